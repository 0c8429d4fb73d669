"""The experiment running now, read for every chat answer (analytics.services.experiments)."""

from __future__ import annotations

import datetime as dt

from analytics.models import Experiment

# The earliest-started experiment whose window holds ``now`` (ends_at exclusive; open-ended when NULL). A plain
# statement: the ORM's query building for this lookup was a measurable part of an answer's CPU under load.
EXPERIMENT_ACTIVE = """
SELECT * FROM analytics_experiment
 WHERE starts_at <= %s AND (ends_at IS NULL OR ends_at > %s)
 ORDER BY starts_at, id
 LIMIT 1
"""


def experiment_active_at(now: dt.datetime) -> Experiment | None:
    return next(iter(Experiment.objects.raw(EXPERIMENT_ACTIVE, [now, now])), None)

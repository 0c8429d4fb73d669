from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from runbooks.models import EMBEDDING_DIMENSIONS

# SearchConfig fields an experiment may override, with their allowed range (runbooks.search.SearchConfig).
OVERRIDABLE_FIELDS: dict[str, tuple[type, float, float]] = {
    "threshold": (float, 0.0, 1.0),
    "primary_gap": (float, 0.0, 1.0),
    "experimental_margin": (float, 0.0, 1.0),
    "max_recommended": (int, 1, 10),
}
key_validator = RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, '_' and '-'.")


def validate_variants(value) -> None:
    """Variants: a list of >= 2 {"key", "weight" > 0, "overrides": {SearchConfig field: value}}."""
    if not isinstance(value, list) or len(value) < 2:
        raise ValidationError('Give at least two variants: [{"key": "control", "weight": 1, "overrides": {}}, ...].')
    errors: list[str] = []
    seen: set[str] = set()
    for index, variant in enumerate(value, start=1):
        if not isinstance(variant, dict):
            errors.append(f"Variant {index} must be an object with key, weight and overrides.")
            continue
        unknown = sorted(set(variant) - {"key", "weight", "overrides"})
        if unknown:
            errors.append(f"Variant {index} has unknown keys: {', '.join(unknown)} (allowed: key, weight, overrides).")
        key = variant.get("key")
        if not isinstance(key, str) or not key_validator.regex.match(key) or len(key) > 100:
            errors.append(f"Variant {index}: 'key' must be lower-case letters, digits, '_' or '-' (at most 100).")
        elif key in seen:
            errors.append(f"Variant {index}: key '{key}' is used twice.")
        else:
            seen.add(key)
        weight = variant.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            errors.append(f"Variant {index}: 'weight' must be a positive number, not {weight!r}.")
        overrides = variant.get("overrides", {})
        if not isinstance(overrides, dict):
            errors.append(f"Variant {index}: 'overrides' must be an object.")
            continue
        for field, override in overrides.items():
            if field not in OVERRIDABLE_FIELDS:
                errors.append(
                    f"Variant {index}: '{field}' cannot be overridden "
                    f"(allowed: {', '.join(sorted(OVERRIDABLE_FIELDS))})."
                )
                continue
            kind, low, high = OVERRIDABLE_FIELDS[field]
            valid_type = isinstance(override, int) if kind is int else isinstance(override, int | float)
            if isinstance(override, bool) or not valid_type or not low <= override <= high:
                errors.append(f"Variant {index}: '{field}' must be {kind.__name__} between {low} and {high}.")
    if errors:
        raise ValidationError(errors)


class Experiment(models.Model):
    """An A/B test of retrieval settings; users are assigned by a hash of (key, user id)."""

    key = models.CharField(max_length=100, unique=True, validators=[key_validator])
    description = models.TextField(blank=True)
    variants = models.JSONField(
        default=list,
        encoder=DjangoJSONEncoder,
        validators=[validate_variants],
        help_text='[{"key": "control", "weight": 1, "overrides": {}}, '
        '{"key": "low-threshold", "weight": 1, "overrides": {"threshold": 0.4}}]. The first variant is the control.',
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: runs until stopped.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must be after the start."})
        if self.starts_at:
            # One experiment at a time: every answer belongs to at most one, so the analysis is clean.
            overlapping = Experiment.objects.exclude(pk=self.pk).filter(
                models.Q(ends_at__isnull=True) | models.Q(ends_at__gt=self.starts_at)
            )
            if self.ends_at:
                overlapping = overlapping.filter(starts_at__lt=self.ends_at)
            clash = overlapping.first()
            if clash:
                raise ValidationError(
                    f"The active window overlaps experiment '{clash.key}'; only one may run at a time."
                )


class RunbookStats(models.Model):
    """Learned feedback per runbook, recomputed from scratch by ``manage.py update_runbook_stats``."""

    runbook = models.OneToOneField("runbooks.Runbook", on_delete=models.CASCADE, primary_key=True, related_name="+")
    impressions = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    ctr = models.FloatField(null=True, help_text="Raw clicks / impressions (position-biased).")
    debiased_ctr = models.FloatField(null=True, help_text="Inverse-propensity weighted CTR (position-debiased).")
    rank1_impressions = models.PositiveIntegerField(default=0)
    rank1_clicks = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    smoothed_success = models.FloatField(default=0.5)
    feedback_score = models.FloatField(default=0.0, help_text="In [-1, 1]; 0 = no evidence either way.")
    last_interaction_at = models.DateTimeField(null=True)
    stale_reason = models.CharField(max_length=300, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name = "runbook stats"
        verbose_name_plural = "runbook stats"
        ordering = ["-impressions"]

    def __str__(self) -> str:
        return f"stats {self.runbook_id}"


class StatsRun(models.Model):
    """One row per update_runbook_stats run: what it saw, so a re-run without new data can skip."""

    computed_at = models.DateTimeField()
    max_event_timestamp = models.DateTimeField(null=True)
    event_count = models.BigIntegerField(default=0)
    execution_count = models.BigIntegerField(default=0)
    propensities = models.JSONField(default=dict)
    runbooks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"stats run {self.computed_at:%Y-%m-%d %H:%M}"


class LogFact(models.Model):
    """Rollup: one row per settled audit log (older than the 24 h click window), every runbook visible.

    Written only by analytics_facts_refresh (raw SQL in analytics/sql/facts.py); metrics read these for
    settled logs and compute newer ones live, so results are the same either way.
    """

    audit_log_id = models.UUIDField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=30)
    strategy = models.CharField(max_length=40)
    experiment = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    presented = models.PositiveSmallIntegerField()
    first_click_at = models.DateTimeField(null=True)
    first_click_rank = models.PositiveSmallIntegerField(null=True)
    clicked_runbooks = models.PositiveSmallIntegerField()

    class Meta:
        db_table = "analytics_log_facts"

    def __str__(self) -> str:
        return str(self.audit_log_id)


class PairFact(models.Model):
    """Rollup: one row per (settled audit log, presented runbook) with its funnel step times."""

    audit_log_id = models.UUIDField()
    runbook_id = models.UUIDField()
    created_at = models.DateTimeField()
    source = models.CharField(max_length=30)
    strategy = models.CharField(max_length=40)
    experiment = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    rank = models.PositiveSmallIntegerField(null=True)
    carried_over = models.BooleanField(default=False)
    presented_at = models.DateTimeField()
    clicked_at = models.DateTimeField(null=True)
    viewed_at = models.DateTimeField(null=True)
    started_at = models.DateTimeField(null=True)
    succeeded_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "analytics_pair_facts"
        constraints = [models.UniqueConstraint(fields=["audit_log_id", "runbook_id"], name="pair_facts_unique")]
        indexes = [models.Index(name="pair_facts_created", fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.audit_log_id} {self.runbook_id}"


class FactsState(models.Model):
    """Single row: facts are complete for audit logs created before ``settled_before``."""

    settled_before = models.DateTimeField(null=True)
    refreshed_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"facts settled before {self.settled_before}"


class RollupAudience(models.Model):
    """Whose view a set of daily rollups holds: everyone (superusers, ``hidden`` NULL) or the staff who may
    not see exactly the runbooks in ``hidden``. Per-log metrics depend on which runbooks a reader may
    see, so they are rolled up per audience; ``rolled_until`` (a day boundary in ``time_zone``) is how far."""

    key = models.CharField(max_length=64, unique=True)
    hidden = ArrayField(models.UUIDField(), null=True)
    time_zone = models.CharField(max_length=64)
    rolled_until = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return self.key


class _DailyCell(models.Model):
    """The dimensions every filter of the dashboard can select, per calendar day in the audience's zone."""

    day = models.DateField()
    strategy = models.CharField(max_length=40)
    source = models.CharField(max_length=30)
    experiment = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)

    class Meta:
        abstract = True


class DailyLogRollup(_DailyCell):
    """Additive per-log counts of settled audit logs, per audience and cell (docs/analytics.md, Rollups)."""

    audience = models.ForeignKey(RollupAudience, on_delete=models.CASCADE, related_name="+")
    logs = models.IntegerField()
    recommended = models.IntegerField()
    clicked = models.IntegerField()
    rank1 = models.IntegerField()
    multi = models.IntegerField()
    # numeric, as the live statement sums 1.0 / rank: the same digits whichever way the days are grouped
    rr_sum = models.DecimalField(max_digits=32, decimal_places=20)
    abandoned = models.IntegerField()

    class Meta:
        db_table = "analytics_daily_logs"
        indexes = [models.Index(name="daily_logs_audience_day", fields=["audience", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.strategy} {self.source}"


class DailyPairRollup(_DailyCell):
    """Presentations per audience, cell, rank and carried-over flag, with their funnel step counts."""

    detailed = models.BooleanField()  # False: per strategy only (analytics.sql.common.rollup_condition)
    audience = models.ForeignKey(RollupAudience, on_delete=models.CASCADE, related_name="+")
    rank = models.SmallIntegerField(null=True)
    carried_over = models.BooleanField()
    impressions = models.IntegerField()
    clicks = models.IntegerField()
    viewed = models.IntegerField()
    started = models.IntegerField()
    succeeded = models.IntegerField()

    class Meta:
        db_table = "analytics_daily_pairs"
        indexes = [models.Index(name="daily_pairs_audience_day", fields=["audience", "detailed", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.strategy} {self.source}"


class DailyHistogram(_DailyCell):
    """Durations on fixed log-scale buckets (analytics/histograms.py) per audience and cell: ``measure`` 0 is
    time to decision, 1-4 the funnel's seconds from the previous step (click, view, start, success)."""

    detailed = models.BooleanField()
    audience = models.ForeignKey(RollupAudience, on_delete=models.CASCADE, related_name="+")
    measure = models.SmallIntegerField()
    bucket = models.SmallIntegerField()
    count = models.IntegerField()

    class Meta:
        db_table = "analytics_daily_histograms"
        indexes = [models.Index(name="daily_hist_audience_day", fields=["audience", "detailed", "measure", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.strategy} {self.source}"


class DailyRunbookRollup(_DailyCell):
    """Presentations per runbook (every audience: restricted readers filter by runbook id). The carried-over
    split is in DailyPairRollup; here it would double the rows top runbooks read."""

    detailed = models.BooleanField()
    runbook_id = models.UUIDField()
    impressions = models.IntegerField()
    clicks = models.IntegerField()
    click_rank_sum = models.IntegerField()

    class Meta:
        db_table = "analytics_daily_runbooks"
        # Covering: top runbooks over a year read ~100k coarse rows by an index-only scan.
        indexes = [
            models.Index(
                name="daily_runbooks_day",
                fields=["detailed", "day"],
                include=["runbook_id", "impressions", "clicks", "click_rank_sum", "strategy", "source"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.strategy} {self.source}"


class QuestionVector(models.Model):
    """The embedding of an audit log's question, for grouping the knowledge gaps by meaning (written by
    ``manage.py refresh_gap_vectors`` for the questions that are gap candidates; docs/analytics.md)."""

    audit_log_id = models.UUIDField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    embedding_model = models.CharField(max_length=200)

    class Meta:
        db_table = "analytics_question_vectors"

    def __str__(self) -> str:
        return str(self.audit_log_id)

from django.conf import settings
from django.db import migrations

# The event store: declaratively partitioned by month on event_timestamp, a DEFAULT partition so
# no event is ever refused, a global uniqueness guard for client-supplied event ids (a unique
# index on a partitioned table must include the partition key), and an append-only guard.
FORWARD = r"""
CREATE TABLE runbook_interaction_events (
    event_id uuid NOT NULL,
    event_timestamp timestamptz NOT NULL DEFAULT now(),
    user_id integer NULL REFERENCES auth_user (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    session_id uuid NULL REFERENCES ai_helper_sessions (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    audit_log_id uuid NULL REFERENCES ai_helper_audit_logs (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    runbook_id uuid NOT NULL REFERENCES runbooks (id) DEFERRABLE INITIALLY DEFERRED,
    event_type varchar(30) NOT NULL CHECK (event_type IN (
        'presented', 'clicked_link', 'viewed_detail', 'started_execution', 'succeeded', 'failed',
        'abandoned', 'feedback_positive', 'feedback_negative')),
    rank smallint NULL CHECK (rank IS NULL OR rank >= 1),
    source varchar(30) NOT NULL DEFAULT 'direct' CHECK (source IN (
        'chat_page', 'widget', 'search_page', 'runbook_list', 'alert_page', 'direct')),
    client_timestamp timestamptz NULL,
    experiment varchar(100) NOT NULL DEFAULT '',
    variant varchar(100) NOT NULL DEFAULT '',
    page_context jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (event_id, event_timestamp)
) PARTITION BY RANGE (event_timestamp);

CREATE TABLE runbook_interaction_events_default PARTITION OF runbook_interaction_events DEFAULT;

CREATE INDEX runbook_events_runbook_type_ts
    ON runbook_interaction_events (runbook_id, event_type, event_timestamp);
CREATE INDEX runbook_events_audit_log ON runbook_interaction_events (audit_log_id);
CREATE INDEX runbook_events_ts ON runbook_interaction_events (event_timestamp);

CREATE TABLE runbook_interaction_event_ids (
    event_id uuid PRIMARY KEY,
    event_timestamp timestamptz NOT NULL
);

CREATE FUNCTION runbook_events_claim_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO runbook_interaction_event_ids (event_id, event_timestamp)
        VALUES (NEW.event_id, NEW.event_timestamp);
    RETURN NEW;
EXCEPTION WHEN unique_violation THEN
    RAISE unique_violation USING
        MESSAGE = format('event_id %s is already recorded', NEW.event_id),
        CONSTRAINT = 'runbook_interaction_event_ids_pkey';
END
$$;

CREATE TRIGGER runbook_events_claim_id
    BEFORE INSERT ON runbook_interaction_events
    FOR EACH ROW EXECUTE FUNCTION runbook_events_claim_id();

-- Append-only: the only change allowed is the database itself nulling a reference when a user,
-- session or audit log is deleted.
CREATE FUNCTION runbook_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.event_id, NEW.event_timestamp, NEW.runbook_id, NEW.event_type, NEW.rank, NEW.source,
        NEW.client_timestamp, NEW.experiment, NEW.variant, NEW.page_context, NEW.metadata)
       IS DISTINCT FROM
       (OLD.event_id, OLD.event_timestamp, OLD.runbook_id, OLD.event_type, OLD.rank, OLD.source,
        OLD.client_timestamp, OLD.experiment, OLD.variant, OLD.page_context, OLD.metadata)
       OR (NEW.user_id IS DISTINCT FROM OLD.user_id AND NEW.user_id IS NOT NULL)
       OR (NEW.session_id IS DISTINCT FROM OLD.session_id AND NEW.session_id IS NOT NULL)
       OR (NEW.audit_log_id IS DISTINCT FROM OLD.audit_log_id AND NEW.audit_log_id IS NOT NULL)
    THEN
        RAISE EXCEPTION 'runbook_interaction_events is append-only';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER runbook_events_append_only
    BEFORE UPDATE ON runbook_interaction_events
    FOR EACH ROW EXECUTE FUNCTION runbook_events_append_only();

-- Creates the monthly partition holding p_month (UTC) if missing, first moving any rows for that
-- month out of the DEFAULT partition (ATTACH would fail otherwise). Returns rows moved, or -1
-- when the partition already existed.
CREATE FUNCTION runbook_events_ensure_partition(p_month date) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    lower_bound timestamptz := make_timestamptz(
        extract(year FROM p_month)::int, extract(month FROM p_month)::int, 1, 0, 0, 0, 'UTC');
    upper_bound timestamptz := lower_bound + interval '1 month';
    part_name text := format('runbook_interaction_events_y%sm%s',
        to_char(p_month, 'YYYY'), to_char(p_month, 'MM'));
    moved bigint;
BEGIN
    IF to_regclass(part_name) IS NOT NULL THEN
        RETURN -1;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I (LIKE runbook_interaction_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
        part_name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM runbook_interaction_events_default '
        'WHERE event_timestamp >= %L AND event_timestamp < %L RETURNING *) '
        'INSERT INTO %I SELECT * FROM moved', lower_bound, upper_bound, part_name);
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format(
        'ALTER TABLE runbook_interaction_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        part_name, lower_bound, upper_bound);
    RETURN moved;
END
$$;

SELECT runbook_events_ensure_partition((date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => m))::date)
  FROM generate_series(-1, 3) AS m;
"""

REVERSE = """
DROP TABLE IF EXISTS runbook_interaction_events CASCADE;
DROP TABLE IF EXISTS runbook_interaction_event_ids;
DROP FUNCTION IF EXISTS runbook_events_claim_id();
DROP FUNCTION IF EXISTS runbook_events_append_only();
DROP FUNCTION IF EXISTS runbook_events_ensure_partition(date);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("runbooks", "0003_search_vector_trigger"),
        ("aihelper", "0002_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]
    operations = [migrations.RunSQL(FORWARD, REVERSE)]

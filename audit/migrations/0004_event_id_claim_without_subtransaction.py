from django.db import migrations

# The EXCEPTION block in the 0002 version cost a subtransaction per inserted event only to re-raise
# the same unique violation; without it the error (constraint runbook_interaction_event_ids_pkey)
# reaches the caller unchanged.
FORWARD = """
CREATE OR REPLACE FUNCTION runbook_events_claim_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO runbook_interaction_event_ids (event_id, event_timestamp)
        VALUES (NEW.event_id, NEW.event_timestamp);
    RETURN NEW;
END
$$;
"""

REVERSE = """
CREATE OR REPLACE FUNCTION runbook_events_claim_id() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_event_tables_managed")]
    operations = [migrations.RunSQL(FORWARD, REVERSE)]

from django.db import migrations

# The click hot path as one PostgreSQL function: lock the caller's audit log, check session, duplicate
# event id, presented solution and rank, append the click (and the latest-choice keys), write the event.
# One round trip instead of five; the rules are the ones audit.services.tracking.click_record documents.
FORWARD = r"""
CREATE FUNCTION audit_click_record(
    p_user_id integer, p_audit_log_id uuid, p_session_id uuid, p_solution_id text, p_solution_type text,
    p_user_action text, p_client_rank integer, p_event_id uuid, p_source text, p_event_type text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    log_row record;
    solution jsonb;
    previous jsonb;
    click_count integer;
    solution_rank integer;
    chosen_at timestamptz := clock_timestamp();  -- not now(): that is the start of an enclosing transaction
    decision numeric;
    click jsonb;
BEGIN
    SELECT id, session_id, created_at, ai_action_details, user_modifications INTO log_row
      FROM ai_helper_audit_logs WHERE id = p_audit_log_id AND user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('status', 'not_found');
    END IF;
    IF p_session_id IS NOT NULL AND log_row.session_id IS DISTINCT FROM p_session_id THEN
        RETURN jsonb_build_object('status', 'session_mismatch');
    END IF;
    click_count := jsonb_array_length(COALESCE(log_row.user_modifications -> 'clicks', '[]'::jsonb));
    previous := jsonb_path_query_first(
        log_row.user_modifications, '$.clicks[*] ? (@.event_id == $id)', jsonb_build_object('id', p_event_id::text));
    IF previous IS NOT NULL THEN
        RETURN jsonb_build_object('status', 'duplicate', 'click_count', click_count, 'rank', previous -> 'rank',
                                  'time_to_decision_seconds', previous -> 'time_to_decision_seconds');
    END IF;
    solution := jsonb_path_query_first(
        log_row.ai_action_details, '$.solutions_presented[*] ? (@.id == $id && @.type == $type)',
        jsonb_build_object('id', p_solution_id, 'type', p_solution_type));
    IF solution IS NULL THEN
        RETURN jsonb_build_object('status', 'not_presented');
    END IF;
    solution_rank := (solution ->> 'rank')::integer;
    IF p_client_rank IS NOT NULL AND p_client_rank IS DISTINCT FROM solution_rank THEN
        RETURN jsonb_build_object('status', 'rank_mismatch', 'rank', solution_rank);
    END IF;
    decision := round(GREATEST(0, extract(epoch FROM chosen_at - log_row.created_at))::numeric, 3);
    click := jsonb_build_object(
        'event_id', p_event_id::text, 'solution_chosen_id', p_solution_id, 'solution_chosen_type', p_solution_type,
        'user_action', p_user_action, 'rank', solution_rank, 'source', p_source,
        'chosen_at', to_char(chosen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
        'time_to_decision_seconds', decision);
    UPDATE ai_helper_audit_logs SET user_modifications =
        jsonb_set(COALESCE(user_modifications, '{}'::jsonb), '{clicks}',
                  COALESCE(user_modifications -> 'clicks', '[]'::jsonb) || jsonb_build_array(click))
        || jsonb_build_object('solution_chosen_id', p_solution_id, 'solution_chosen_type', p_solution_type,
                              'solution_chosen_rank', solution_rank, 'user_action', p_user_action,
                              'chosen_at', click -> 'chosen_at')
      WHERE id = log_row.id;
    IF p_solution_type = 'runbook' THEN
        INSERT INTO runbook_interaction_events (
            event_id, event_timestamp, user_id, session_id, audit_log_id, runbook_id, event_type, rank, source,
            client_timestamp, experiment, variant, page_context, metadata)
        VALUES (
            p_event_id, chosen_at, p_user_id, log_row.session_id, log_row.id, p_solution_id::uuid, p_event_type,
            solution_rank, p_source, NULL, COALESCE(log_row.ai_action_details ->> 'experiment', ''),
            COALESCE(log_row.ai_action_details ->> 'variant', ''), '{}'::jsonb,
            jsonb_build_object('user_action', p_user_action));
    END IF;
    RETURN jsonb_build_object('status', 'created', 'click_count', click_count + 1, 'rank', solution_rank,
                              'time_to_decision_seconds', decision);
END
$$;
"""

REVERSE = """
DROP FUNCTION IF EXISTS audit_click_record(integer, uuid, uuid, text, text, text, integer, uuid, text, text);
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_event_id_claim_without_subtransaction")]
    operations = [migrations.RunSQL(FORWARD, REVERSE)]

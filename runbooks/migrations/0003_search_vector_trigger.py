from django.db import migrations

# The weighted tsvector (title A, tags and description B, steps C) is kept current by a trigger,
# so admin edits, imports and any other write path are searchable at once. The title is indexed
# both as written and with CamelCase split into words ("KubePodCrashLooping" -> "Kube Pod ...").
FORWARD = r"""
CREATE OR REPLACE FUNCTION runbooks_search_vector_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    steps_text text;
BEGIN
    SELECT coalesce(string_agg(
        CASE jsonb_typeof(step)
            WHEN 'string' THEN step #>> '{}'
            WHEN 'object' THEN concat_ws(' ', step ->> 'title', step ->> 'detail', step ->> 'command')
            ELSE ''
        END, ' '), '')
      INTO steps_text
      FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(NEW.steps) = 'array' THEN NEW.steps ELSE '[]'::jsonb END
      ) AS step;
    NEW.search_vector :=
        setweight(to_tsvector('english', concat_ws(' ',
            NEW.name,
            regexp_replace(NEW.name, '([a-z0-9])([A-Z])', '\1 \2', 'g'),
            regexp_replace(NEW.slug, '[/_.-]', ' ', 'g'))), 'A')
        || setweight(to_tsvector('english', concat_ws(' ',
            array_to_string(NEW.tags, ' '), NEW.description)), 'B')
        || setweight(to_tsvector('english', steps_text), 'C');
    RETURN NEW;
END
$$;

CREATE TRIGGER runbooks_search_vector_trigger
    BEFORE INSERT OR UPDATE OF name, slug, tags, description, steps ON runbooks
    FOR EACH ROW EXECUTE FUNCTION runbooks_search_vector_update();

UPDATE runbooks SET name = name;
"""

REVERSE = """
DROP TRIGGER IF EXISTS runbooks_search_vector_trigger ON runbooks;
DROP FUNCTION IF EXISTS runbooks_search_vector_update();
"""


class Migration(migrations.Migration):
    dependencies = [("runbooks", "0002_initial")]
    operations = [migrations.RunSQL(FORWARD, REVERSE)]

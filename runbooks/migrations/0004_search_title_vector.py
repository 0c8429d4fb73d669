from django.db import migrations

# A second, small tsvector over what names a runbook -- its title (as written, with CamelCase split
# into words, and the slug) at weight A and its tags at weight B -- with its own GIN index. Search
# uses it to pick keyword candidates: it stays inline in the heap (no TOAST), so ranking a few
# thousand matches costs milliseconds, where ranking them on the full document vector (steps
# included) costs hundreds (docs/retrieval.md). Kept current by a trigger, like search_vector, so
# every write path (admin, import, bulk_create) is searchable at once.
#
# The column is not declared on the Runbook model (runbooks/models.py belongs to the model owners):
# Django never selects or writes it; runbooks/selectors.py reads it through one named expression.
# The CamelCase split handles acronyms too: "CPUThrottlingHigh" -> "CPU Throttling High".
FORWARD = r"""
ALTER TABLE runbooks ADD COLUMN search_title tsvector;

CREATE OR REPLACE FUNCTION runbooks_search_title_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_title :=
        setweight(to_tsvector('english', concat_ws(' ',
            NEW.name,
            regexp_replace(
                regexp_replace(NEW.name, '([a-z0-9])([A-Z])', '\1 \2', 'g'),
                '([A-Z])([A-Z][a-z])', '\1 \2', 'g'),
            regexp_replace(NEW.slug, '[/_.-]', ' ', 'g'))), 'A')
        || setweight(to_tsvector('english', array_to_string(NEW.tags, ' ')), 'B');
    RETURN NEW;
END
$$;

CREATE TRIGGER runbooks_search_title_trigger
    BEFORE INSERT OR UPDATE OF name, slug, tags ON runbooks
    FOR EACH ROW EXECUTE FUNCTION runbooks_search_title_update();

UPDATE runbooks SET name = name;

CREATE INDEX runbooks_search_title_gin ON runbooks USING gin (search_title);
"""

REVERSE = """
DROP INDEX IF EXISTS runbooks_search_title_gin;
DROP TRIGGER IF EXISTS runbooks_search_title_trigger ON runbooks;
DROP FUNCTION IF EXISTS runbooks_search_title_update();
ALTER TABLE runbooks DROP COLUMN IF EXISTS search_title;
"""


class Migration(migrations.Migration):
    dependencies = [("runbooks", "0003_search_vector_trigger")]
    operations = [migrations.RunSQL(FORWARD, REVERSE)]

"""Every raw SQL statement of the runbooks app (migrations aside), each a named constant or function.

Values are bound parameters and identifiers go through ``psycopg.sql``; nothing is built from input
text. Each statement has its own test on data whose answer is known (tests/runbooks/test_sql.py).
"""

from __future__ import annotations

import functools

from django.contrib.postgres.search import SearchVectorField
from django.db import connection, connections
from django.db.models import Expression
from psycopg import sql

from runbooks.models import Runbook

# A query word whose lexemes all occur in more than this many runbooks (planner statistics) is not
# used to *find* keyword candidates: it matches a large share of a big corpus and ranking those
# matches is what made the full-text leg slow. It still counts in the keyword score of the
# candidates found. Below ~MAX_TERM_MATCHES runbooks nothing is ever dropped.
MAX_TERM_MATCHES = 300

# Catalog read, so it cannot be an ORM query: pg_stats keeps, per tsvector column, the most common
# lexemes and the share of rows holding each (refreshed by ANALYZE/autovacuum). A word is kept when
# at least one of its lexemes is not common; stop words (no lexeme) are dropped. Missing statistics
# (a fresh or tiny table) mean nothing is dropped. Constant SQL text; the words are bound parameters.
SELECTIVE_WORDS_SQL = """
WITH common AS (
    SELECT element.lexeme
      FROM pg_stats AS stats
     CROSS JOIN LATERAL unnest(stats.most_common_elems::text::text[], stats.most_common_elem_freqs)
           AS element(lexeme, share)
     WHERE stats.schemaname = current_schema() AND stats.tablename = 'runbooks' AND stats.attname = %s
       AND element.lexeme IS NOT NULL
       AND element.share * (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'runbooks'::regclass) > %s
)
SELECT query.word
  FROM unnest(%s::text[]) WITH ORDINALITY AS query(word, position)
 WHERE EXISTS (
        SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('english', query.word))) AS lexeme
         WHERE lexeme NOT IN (SELECT common.lexeme FROM common))
 ORDER BY query.position
"""


def selective_words(
    words: list[str], *, column: str = "search_title", max_matches: int = MAX_TERM_MATCHES
) -> list[str]:
    """The words worth matching on ``column`` (a tsvector column of runbooks): see SELECTIVE_WORDS_SQL."""
    if not words:
        return []
    with connection.cursor() as cursor:
        cursor.execute(SELECTIVE_WORDS_SQL, [column, max_matches, words])
        return [row[0] for row in cursor.fetchall()]


PGVECTOR_HAS_ITERATIVE_SCAN_SQL = (
    "SELECT string_to_array(extversion, '.')::int[] >= '{0,8}' FROM pg_extension WHERE extname = 'vector'"
)


@functools.cache
def pgvector_has_iterative_scan(alias: str) -> bool:
    """hnsw.iterative_scan exists from pgvector 0.8; older versions reserve the "hnsw." prefix and refuse
    an unknown setting once loaded, so it is only set where it exists (external DATABASE_URL servers)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(PGVECTOR_HAS_ITERATIVE_SCAN_SQL)
        row = cursor.fetchone()
    return bool(row and row[0])


# set_config(..., true) is SET LOCAL with bound values: it ends with the transaction it runs in.
HNSW_EF_SEARCH_SQL = "SELECT set_config('hnsw.ef_search', %s, true)"
HNSW_EF_SEARCH_AND_ITERATIVE_SCAN_SQL = (
    "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true)"
)


def hnsw_scan_set_local(*, ef_search: int, iterative_scan: str) -> None:
    """Set the HNSW scan settings for the rest of the current transaction (call it inside one).

    ``iterative_scan`` is skipped on pgvector < 0.8, which does not have it.
    """
    with connection.cursor() as cursor:
        if pgvector_has_iterative_scan(connection.alias):
            cursor.execute(HNSW_EF_SEARCH_AND_ITERATIVE_SCAN_SQL, [str(ef_search), iterative_scan])
        else:
            cursor.execute(HNSW_EF_SEARCH_SQL, [str(ef_search)])


class TitleVector(Expression):
    """runbooks.search_title: title (as written, CamelCase split, slug) at weight A and tags at B.

    Maintained by a trigger (migration 0004) with its own GIN index; not a model field, so it is
    read through this expression (always on the top-level runbooks table, which is all search uses).
    """

    output_field = SearchVectorField()

    def as_sql(self, compiler, connection):
        return sql.Identifier(Runbook._meta.db_table, "search_title").as_string(None), []

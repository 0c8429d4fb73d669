"""Every raw SQL statement of the runbooks app (migrations aside), each a named constant or function.

Values are bound parameters and identifiers go through ``psycopg.sql``; nothing is built from input
text. Each statement has its own test on data whose answer is known (tests/runbooks/test_sql.py).
"""

from __future__ import annotations

import functools

from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import EmptyResultSet, FullResultSet
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
# The lexemes of one tsvector column (bound: the column name, then MAX_TERM_MATCHES) found in more runbooks than
# that, and the condition that a query word has a lexeme outside them: shared by SELECTIVE_WORDS_SQL and the
# keyword legs of the candidates statement, so both apply the same rule.
_COMMON_LEXEMES = """
    SELECT element.lexeme
      FROM pg_stats AS stats
     CROSS JOIN LATERAL unnest(stats.most_common_elems::text::text[], stats.most_common_elem_freqs)
           AS element(lexeme, share)
     WHERE stats.schemaname = current_schema() AND stats.tablename = 'runbooks' AND stats.attname = %s
       AND element.lexeme IS NOT NULL
       AND element.share * (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'runbooks'::regclass) > %s"""
_SELECTIVE_WORDS = """
      FROM unnest(%s::text[]) WITH ORDINALITY AS query(word, position)
     WHERE EXISTS (
            SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('english', query.word))) AS lexeme
             WHERE lexeme NOT IN (SELECT common.lexeme FROM {common} AS common))"""
SELECTIVE_WORDS_SQL = (
    "WITH common AS (" + _COMMON_LEXEMES + ")\nSELECT query.word" + _SELECTIVE_WORDS.format(common="common")
    + "\n ORDER BY query.position"
)


def selective_words(
    words: list[str], *, column: str = "search_title", max_matches: int = MAX_TERM_MATCHES
) -> list[str]:
    """The words worth matching on ``column`` (a tsvector column of runbooks): see SELECTIVE_WORDS_SQL. The
    search applies the same rule inside its candidates statement (``candidate_rows``); this is the rule on its
    own, for tests and for looking at what a query would match on."""
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


# --- Search candidates in one statement --------------------------------------------------------------------
# runbooks.search.runbook_candidates used to build five ORM queries per search (the vector leg, the title leg,
# the rows with their keyword rank, the success counts); compiling them was about half of a search's CPU under
# load (docs/benchmarks.md, "Session 8"). The same legs, with the same visibility condition (compiled once by
# the ORM from the caller's queryset) are now one statement. Every value is a bound parameter; the text is made
# of the constant fragments below, the model's column names (psycopg.sql.Identifier) and the ORM's condition.

_TSQUERY_TERM = "plainto_tsquery('english'::regconfig, %s)"


def _tsquery_or(words: list[str]) -> str:
    """``(plainto_tsquery(w1) || plainto_tsquery(w2) ...)``: one placeholder per word, as Django's
    ``SearchQuery(word, search_type="plain", config="english")`` ORed together compiles."""
    return "(" + " || ".join([_TSQUERY_TERM] * len(words)) + ")"


_VECTOR_LEG = """vector_leg AS MATERIALIZED (
    SELECT "runbooks"."id", ("runbooks"."embedding" <=> %s::vector) AS distance
      FROM "runbooks" WHERE ({where}) AND "runbooks"."embedding" IS NOT NULL
     ORDER BY 2 LIMIT %s)"""
# ts_rank(..., 32): rank / (rank + 1), as SearchRank(normalization=32). A keyword leg matches the selective words
# of the query only (SELECTIVE_WORDS_SQL's rule, computed in the statement: one round trip less per search), ORed
# together as ``plainto_tsquery(w1) || plainto_tsquery(w2) ...`` would be; none selective: the leg finds nothing.
_MATCH_LEG = """{name}_common AS MATERIALIZED ({common}),
{name}_query AS MATERIALIZED (
    SELECT string_agg('(' || plainto_tsquery('english'::regconfig, query.word)::text || ')', ' | '
                      ORDER BY query.position)::tsquery AS terms
    {selective}),
{name} AS MATERIALIZED (
    SELECT "runbooks"."id", ts_rank("runbooks".{column}, (SELECT terms FROM {name}_query), 32) AS match_rank
      FROM "runbooks" WHERE ({where}) AND "runbooks".{column} @@ (SELECT terms FROM {name}_query)
     ORDER BY 2 DESC, 1 LIMIT %s)"""
_CANDIDATES = """WITH {legs},
candidate AS ({union} UNION SELECT unnest(%s::uuid[]))
SELECT {columns}, {leg_columns}, {direct_distance} AS direct_distance, {keyword_rank} AS keyword_rank,
       {success_columns}
  FROM candidate JOIN "runbooks" ON "runbooks"."id" = candidate.id
  {joins}
 WHERE ({where})"""
# Finished executions of each candidate (as success_counts counts them), when the caller asks for them.
_SUCCESS_JOIN = """LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE executions.status = %s) AS succeeded, count(*) AS finished
      FROM runbook_executions AS executions
     WHERE executions.runbook_id = "runbooks"."id" AND executions.status IN (%s, %s)) AS runs ON TRUE"""
_LEG_JOIN = 'LEFT JOIN {name} ON {name}.id = "runbooks"."id"'
_LEG_IDS = "SELECT id FROM {name}"
# What search never reads from a candidate row (large, or only used inside the statement).
CANDIDATE_DEFERRED = ("embedding", "search_vector", "body_markdown")


@functools.cache
def _candidate_columns() -> str:
    return ", ".join(
        sql.Identifier(Runbook._meta.db_table, field.column).as_string(None)
        for field in Runbook._meta.concrete_fields
        if field.attname not in CANDIDATE_DEFERRED
    )


def queryset_condition(queryset) -> tuple[str, list]:
    """The WHERE condition of ``queryset`` (a filter of the runbooks table alone, no join), compiled once so
    that a raw statement over "runbooks" applies exactly the same visibility."""
    query = queryset.query
    if set(query.alias_map) - {Runbook._meta.db_table}:
        raise ValueError("the condition must be on the runbooks table alone (no join)")
    compiler = query.get_compiler(using=queryset.db)
    try:
        condition, params = compiler.compile(query.where)
    except EmptyResultSet:
        return "FALSE", []
    except FullResultSet:
        return "TRUE", []
    return condition or "TRUE", list(params)


def candidate_rows(
    *,
    condition: tuple[str, list],
    vector: str | None,
    title_words: list[str],
    document_words: list[str],
    all_words: list[str],
    limit: int,
    extra_ids: list,
    vector_leg: bool = True,
    max_term_matches: int = MAX_TERM_MATCHES,
    success_statuses: tuple[str, str] | None = None,
):
    """The candidate runbooks of one search, each with what the search computes from its row:

    ``leg_distance`` (cosine distance, when the vector leg found it: top ``limit`` by distance over the
    HNSW index), ``title_rank`` / ``document_rank`` (ts_rank, when the title leg / the full-document leg
    found it: top ``limit`` matching the selective words of ``title_words`` / ``document_words`` by the rule of
    ``selective_words``, with ``max_term_matches``), ``direct_distance`` (cosine
    distance for any row, given ``vector`` and ``extra_ids``), ``keyword_rank`` (ts_rank of the full
    document against ``all_words``). Rows: the union of the legs and ``extra_ids``, each satisfying
    ``condition`` (queryset_condition). A vector leg needs its HNSW settings: call inside a transaction
    after ``hnsw_scan_set_local``. Empty word lists skip their leg, ``vector_leg=False`` the vector leg (the
    vector still gives ``direct_distance``). With ``success_statuses`` (succeeded, failed), each row also has
    ``succeeded_runs`` / ``finished_runs``, as ``success_counts`` counts them (one statement fewer)."""
    where, where_params = condition
    legs, leg_params, names = [], [], []
    if vector is not None and vector_leg:
        legs.append(_VECTOR_LEG.format(where=where))
        leg_params += [vector, *where_params, limit]
        names.append("vector_leg")
    for name, column, words in (("title_leg", "search_title", title_words),
                                ("document_leg", "search_vector", document_words)):
        if words:
            legs.append(_MATCH_LEG.format(
                name=name, column=sql.Identifier(column).as_string(None), where=where, common=_COMMON_LEXEMES,
                selective=_SELECTIVE_WORDS.format(common=name + "_common"),
            ))
            leg_params += [column, max_term_matches, list(words), *where_params, limit]
            names.append(name)
    if not legs:  # no vector and no words: only the runbooks in play, if any
        legs.append("no_leg AS (SELECT NULL::uuid AS id, NULL::float8 AS distance WHERE FALSE)")
        names.append("no_leg")
    leg_columns = ", ".join([
        "vector_leg.distance AS leg_distance" if "vector_leg" in names else "NULL::float8 AS leg_distance",
        "title_leg.match_rank AS title_rank" if "title_leg" in names else "NULL::float4 AS title_rank",
        "document_leg.match_rank AS document_rank" if "document_leg" in names else "NULL::float4 AS document_rank",
    ])
    select_params: list = []
    if vector is not None and extra_ids:
        direct_distance = '("runbooks"."embedding" <=> %s::vector)'
        select_params.append(vector)
    else:
        direct_distance = "NULL::float8"
    if all_words:
        keyword_rank = 'ts_rank("runbooks"."search_vector", ' + _tsquery_or(all_words) + ", 32)"
        select_params += all_words
    else:
        keyword_rank = "0::float4"
    joins = [_LEG_JOIN.format(name=name) for name in names if name != "no_leg"]
    join_params: list = []
    if success_statuses is not None:
        succeeded, failed = success_statuses
        joins.append(_SUCCESS_JOIN)
        join_params = [succeeded, succeeded, failed]
        success_columns = "runs.succeeded AS succeeded_runs, runs.finished AS finished_runs"
    else:
        success_columns = "NULL::bigint AS succeeded_runs, NULL::bigint AS finished_runs"
    statement = _CANDIDATES.format(
        legs=",\n".join(legs),
        union=" UNION ".join(_LEG_IDS.format(name=name) for name in names),
        columns=_candidate_columns(),
        leg_columns=leg_columns,
        direct_distance=direct_distance,
        keyword_rank=keyword_rank,
        success_columns=success_columns,
        joins="\n  ".join(joins),
        where=where,
    )
    params = [*leg_params, list(extra_ids), *select_params, *join_params, *where_params]
    return list(Runbook.objects.raw(statement, params))


SUCCESS_STATS_SQL = """
SELECT runbook_id,
       count(*) FILTER (WHERE status = %s) AS succeeded,
       count(*) AS finished
  FROM runbook_executions
 WHERE runbook_id = ANY(%s::uuid[]) AND status IN (%s, %s)
 GROUP BY runbook_id
"""


def success_counts(runbook_ids, *, succeeded: str, failed: str) -> dict:
    """{runbook_id: (succeeded, finished)} over executions whose status is ``succeeded`` or ``failed``."""
    with connection.cursor() as cursor:
        cursor.execute(SUCCESS_STATS_SQL, [succeeded, list(runbook_ids), succeeded, failed])
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}

"""Words of queries and runbooks: query words, light stemming, title and query coverage, word-set cache.

Pure Python (no database): the search uses these for its ``title`` and ``coverage`` features.
"""

from __future__ import annotations

import re
import sys
import threading

from runbooks.embeddings import step_text
from runbooks.models import Runbook

_WORD = re.compile(r"[^\W_]+(?:[-.][^\W_]+)*", re.UNICODE)
MAX_QUERY_WORDS = 64


def query_words(text: str) -> list[str]:
    """The query's distinct words, lower-cased, in order (at most MAX_QUERY_WORDS)."""
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))[:MAX_QUERY_WORDS]


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_TOKEN = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be been by for from has have in is it of on or that the this to too with".split()
)
_SUFFIXES = ("ing", "ed", "es", "s", "ure", "ion")


def _stem(word: str) -> str:
    """A deliberately light suffix strip: 'failed', 'failure', 'failing' -> 'fail'."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def lexical_terms(text: str) -> set[str]:
    """Stemmed content words; CamelCase identifiers are split first ('KubePodCrashLooping')."""
    words = _TOKEN.findall(_CAMEL.sub(" ", text).lower())
    return {_stem(word) for word in words if word not in _STOPWORDS}


def _term_matches(term: str, query_terms: set[str]) -> bool:
    """Equal stems, or one a prefix (>= 3 letters) of the other: alert names abbreviate and the light
    stemmer leaves doubled consonants ('Errs' ~ 'errors', 'Overcommit' ~ 'overcommitted')."""
    if term in query_terms:
        return True
    return len(term) >= 3 and any(
        len(word) >= 3 and (word.startswith(term) or term.startswith(word)) for word in query_terms
    )


def title_coverage(title: str, query_terms: set[str]) -> float:
    """Share of the title's words found in the query: alert titles name the alert's symptoms."""
    terms = lexical_terms(title)
    return sum(_term_matches(term, query_terms) for term in terms) / len(terms) if terms else 0.0


# Word sets of runbooks, per process: {(pk, hash of the text): tuple of interned words}. Keyed by the
# text itself (not updated_at, which a queryset .update() does not touch), bounded, oldest out first.
# Tuples of interned strings: ~1-2 kB per runbook, the words themselves shared between runbooks.
_DOCUMENT_TERMS: dict[tuple, tuple[str, ...]] = {}
_DOCUMENT_TERMS_MAX = 4096
_DOCUMENT_TERMS_LOCK = threading.Lock()


def document_terms(runbook: Runbook) -> tuple[str, ...]:
    """The stemmed words of a runbook's title, description, tags and steps (not the body)."""
    steps = runbook.steps if isinstance(runbook.steps, list) else []
    text = " ".join([runbook.name, runbook.description, " ".join(runbook.tags or []), *map(step_text, steps)])
    key = (runbook.pk, hash(text))
    terms = _DOCUMENT_TERMS.get(key)
    if terms is None:
        terms = tuple(sorted(sys.intern(term) for term in lexical_terms(text)))
        with _DOCUMENT_TERMS_LOCK:
            if len(_DOCUMENT_TERMS) >= _DOCUMENT_TERMS_MAX:
                _DOCUMENT_TERMS.pop(next(iter(_DOCUMENT_TERMS)), None)
            _DOCUMENT_TERMS[key] = terms
    return terms


# Coverage counts this many unmatched words before any query: a query with one or two known words
# ("error") cannot reach coverage 1.0 and claim that a runbook explains it.
COVERAGE_PRIOR_WORDS = 3


def query_coverage(matched: int, known: int) -> float:
    """Share of the query's *known* words (found in at least one candidate) that a runbook contains,
    shrunk by COVERAGE_PRIOR_WORDS.

    Alerts carry host names, paths, numbers and products nobody wrote a runbook for; those words are in
    no candidate and so do not count. What remains is what a runbook could explain, and the right one
    explains much of it: this separates "ranked first among weak matches" from "the answer".
    """
    return matched / (known + COVERAGE_PRIOR_WORDS) if known else 0.0

"""Words of queries and runbooks: query words, light stemming, title and query coverage, word-set cache.

Pure Python (no database): the search uses these for its ``title`` and ``coverage`` features.
"""

from __future__ import annotations

import math
import re
import sys
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

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


def _term_list(text: str) -> list[str]:
    """lexical_terms with repeats, in order (term frequencies for BM25)."""
    return [_stem(word) for word in _TOKEN.findall(_CAMEL.sub(" ", text).lower()) if word not in _STOPWORDS]


def lexical_terms(text: str) -> set[str]:
    """Stemmed content words; CamelCase identifiers are split first ('KubePodCrashLooping')."""
    return set(_term_list(text))


def _term_matches(term: str, query_terms: set[str]) -> bool:
    """Equal stems, or one a prefix (>= 3 letters) of the other: alert names abbreviate and the light
    stemmer leaves doubled consonants ('Errs' ~ 'errors', 'Overcommit' ~ 'overcommitted')."""
    if term in query_terms:
        return True
    return len(term) >= 3 and any(
        len(word) >= 3 and (word.startswith(term) or term.startswith(word)) for word in query_terms
    )


@lru_cache(maxsize=8192)
def _title_terms(title: str) -> frozenset[str]:
    return frozenset(lexical_terms(title))


def title_coverage(title: str, query_terms: set[str]) -> float:
    """Share of the title's words found in the query: alert titles name the alert's symptoms."""
    terms = _title_terms(title)
    return sum(_term_matches(term, query_terms) for term in terms) / len(terms) if terms else 0.0


_IDENTIFIER = re.compile(r"[A-Za-z0-9]+")
_JOINED = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+")


def query_identifiers(text: str) -> frozenset[str]:
    """Every run of letters and digits in the query, lower-cased and unsplit ('KubeletDown',
    'alertname=kubeletdown' and '[FIRING:1] KubeletDown' all yield 'kubeletdown'), and every
    hyphen- or underscore-joined word without its joins ('redis-memory-evictions' -> 'redismemoryevictions')."""
    joined = ("".join(_IDENTIFIER.findall(token)) for token in _JOINED.findall(text))
    return frozenset(token.lower() for token in (*_IDENTIFIER.findall(text), *joined))


def names_runbook(identifiers: frozenset[str], *, name: str, slug: str) -> bool:
    """The query names this runbook's alert: its title or the last part of its slug, as one word."""
    title = "".join(_IDENTIFIER.findall(name)).lower()
    tail = "".join(_IDENTIFIER.findall(slug.rsplit("/", 1)[-1])).lower()
    return bool(identifiers) and (title in identifiers or tail in identifiers)


def title_exact(title: str, query_terms: set[str]) -> float:
    """Share of the title's words present in the query as the same stem (no prefix matching): 'kubelet'
    is evidence for KubeletDown, not for KubeNodeNotReady."""
    terms = _title_terms(title)
    return sum(term in query_terms for term in terms) / len(terms) if terms else 0.0


@dataclass(frozen=True)
class DocumentTerms:
    """A runbook's stemmed words (interned) with how often each occurs, and its length in words."""

    counts: Mapping[str, int]
    length: int

    def __iter__(self):
        return iter(self.counts)

    def count(self, term: str) -> int:
        return self.counts.get(term, 0)


# Word counts of runbooks, per process: {(pk, hash of the text): DocumentTerms}. Keyed by the text itself
# (not updated_at, which a queryset .update() does not touch), bounded, oldest out first. A dict of
# interned words: ~3-5 kB per runbook (at most ~20 MB), the words themselves shared between runbooks.
_DOCUMENT_TERMS: dict[tuple, DocumentTerms] = {}
_DOCUMENT_TERMS_MAX = 4096
_DOCUMENT_TERMS_LOCK = threading.Lock()


def document_terms(runbook: Runbook) -> DocumentTerms:
    """The stemmed words of a runbook's title, description, tags and steps (not the body)."""
    steps = runbook.steps if isinstance(runbook.steps, list) else []
    text = " ".join([runbook.name, runbook.description, " ".join(runbook.tags or []), *map(step_text, steps)])
    key = (runbook.pk, hash(text))
    terms = _DOCUMENT_TERMS.get(key)
    if terms is None:
        words = _term_list(text)
        counts = {sys.intern(term): count for term, count in Counter(words).items()}
        terms = DocumentTerms(counts=counts, length=len(words))
        with _DOCUMENT_TERMS_LOCK:
            if len(_DOCUMENT_TERMS) >= _DOCUMENT_TERMS_MAX:
                _DOCUMENT_TERMS.pop(next(iter(_DOCUMENT_TERMS)), None)
            _DOCUMENT_TERMS[key] = terms
    return terms


BM25_K1 = 1.2
BM25_B = 0.75


def candidate_bm25(query_terms: set[str], documents: Sequence[DocumentTerms]) -> list[float]:
    """Okapi BM25 of each candidate, with document frequencies and average length taken over the
    candidates themselves, divided by the best: a word every candidate contains ("pod" among pod
    alerts) tells them apart by almost nothing, a word only one contains ("compaction", "backoff") by
    much. No collection statistics are needed, so the feature costs a few microseconds per candidate
    at any corpus size.
    """
    if not documents:
        return []
    n = len(documents)
    average = sum(document.length for document in documents) / n or 1.0
    present = [
        [(term, document.counts[term]) for term in query_terms if term in document.counts] for document in documents
    ]
    frequency = Counter(term for found in present for term, _ in found)
    weight = {term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}
    scores = []
    for document, found in zip(documents, present, strict=True):
        norm = BM25_K1 * (1 - BM25_B + BM25_B * document.length / average)
        scores.append(sum(weight[term] * tf * (BM25_K1 + 1) / (tf + norm) for term, tf in found))
    best = max(scores) or 1.0
    return [score / best for score in scores]


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

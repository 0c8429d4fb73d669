"""Identifier evidence: an alert name or a component named in the query counts for the runbook it names."""

import pytest

from runbooks.lexical import lexical_terms, names_runbook, query_identifiers, title_coverage, title_exact


@pytest.mark.parametrize(
    "text",
    [
        "[FIRING:1] KubeletDown (node-12 prod)",
        "alertname=KubeletDown severity=critical",
        "kubeletdown fired again",
        "Is KubeletDown serious?",
    ],
)
def test_an_alert_name_in_any_form_names_the_runbook(text):
    identifiers = query_identifiers(text)
    assert names_runbook(identifiers, name="KubeletDown", slug="kubernetes/kubeletdown")
    assert not names_runbook(identifiers, name="KubeNodeNotReady", slug="kubernetes/kubenodenotready")


def test_the_slug_tail_or_the_title_as_one_word_names_a_runbook():
    identifiers = query_identifiers("paged for redis-memory-evictions on cache-3")
    assert names_runbook(identifiers, name="Redis memory high", slug="demo/redis-memory-evictions")
    assert names_runbook(query_identifiers("RedisMemoryHigh on cache-3"), name="Redis memory high", slug="demo/x")
    assert not names_runbook(query_identifiers("redis memory is high"), name="Redis memory high", slug="demo/x")


def test_a_name_is_a_whole_word_not_a_part_of_one():
    # "KubeletDownstream" is not "KubeletDown"; "Down" alone names nothing.
    assert not names_runbook(query_identifiers("KubeletDownstream errors"), name="KubeletDown", slug="k/kubeletdown")
    assert not names_runbook(query_identifiers("node down"), name="KubeletDown", slug="k/kubeletdown")
    assert not names_runbook(frozenset(), name="KubeletDown", slug="k/kubeletdown")


def test_a_component_counts_for_the_title_that_names_it_exactly():
    terms = lexical_terms("kubelet on node-12 is not scraped anymore")
    # The prefix rule of title_coverage lets "kubelet" match "Kube"; the exact feature does not.
    assert title_coverage("KubeNodeNotReady", terms) == 1.0 - 0.25  # kube~kubelet, node, not (ready missing)
    assert title_exact("KubeNodeNotReady", terms) == 0.5  # node, not
    assert title_exact("KubeletDown", terms) == 0.5  # kubelet
    assert title_exact("PrometheusRemoteWriteBehind", terms) == 0.0

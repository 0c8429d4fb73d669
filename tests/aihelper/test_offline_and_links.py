import pytest

from aihelper.chat.answers import answer_html, answer_links_filter
from aihelper.chat.llm import LLMReply, OfflineProvider, retrieval_answer
from aihelper.chat.prompts import prompt_build
from tests.aihelper.factories import runbook_context

A = "11111111-1111-1111-1111-111111111111"
B = "22222222-2222-2222-2222-222222222222"
C = "33333333-3333-3333-3333-333333333333"


def _runbooks():
    return [
        runbook_context(rank=1, id=A, title="NodeDiskFull", confidence=0.8, success_rate=0.75, success_samples=8,
                       can_execute=True, description="Node disk almost full.",
                       steps=({"title": "Check disk usage", "command": "df -h"}, {"title": "Prune images"})),
        runbook_context(rank=2, id=B, title="PodEvicted", confidence=0.6, success_rate=None, success_samples=0,
                       can_execute=False, description="Pods evicted for disk pressure.",
                       steps=({"title": "List evicted pods", "command": "kubectl get pods -A | grep Evicted"},)),
    ]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("single_solution", "One runbook matches"),
        ("primary_plus_one", "Recommended: [NodeDiskFull]"),
        ("multiple_options", "Several runbooks match"),
        ("experimental_options", "These matches are uncertain"),
    ],
)
def test_offline_answer_follows_the_strategy(strategy, expected):
    runbooks = _runbooks()[:1] if strategy == "single_solution" else _runbooks()
    prompt = prompt_build(question="disk full", history=[], runbooks=runbooks, strategy=strategy)
    text = retrieval_answer(prompt=prompt)
    assert expected in text
    assert f"[NodeDiskFull](/runbooks/{A}/)" in text
    assert "`df -h`" in text
    assert "Why it matches: Node disk almost full." in text
    assert "75% success over 8 runs" in text
    if strategy != "single_solution":
        assert "restricted" in text
        assert f"(/runbooks/{B}/)" in text
    if strategy == "primary_plus_one":
        assert "Alternative: [PodEvicted]" in text
    assert retrieval_answer(prompt=prompt) == text  # deterministic


def test_offline_answer_is_honest_when_nothing_matches():
    prompt = prompt_build(question="the coffee machine is broken", history=[], runbooks=[], strategy="no_solutions")
    text = retrieval_answer(prompt=prompt)
    assert "No matching runbook" in text
    assert "/runbooks/" not in text


def test_offline_provider_streams_then_replies():
    prompt = prompt_build(question="disk", history=[], runbooks=_runbooks(), strategy="multiple_options")
    chunks = list(OfflineProvider().stream(prompt=prompt))
    assert isinstance(chunks[-1], LLMReply)
    assert chunks[-1].provider == "offline"
    assert "".join(c for c in chunks if isinstance(c, str)) == chunks[-1].text


def test_unpresented_runbook_links_are_removed_and_counted():
    markdown = (
        f"Use [Disk](/runbooks/{A}/) or [Invented](/runbooks/{C}/) or [Abs](https://evil.example/runbooks/{C}/).\n"
        f"See [ref][1], <http://host/runbooks/{C}/> and [docs](https://example.com/x).\n\n[1]: /runbooks/{C}/\n"
    )
    filtered, removed = answer_links_filter(markdown=markdown, presented_ids={A})
    assert removed == 4
    assert f"[Disk](/runbooks/{A}/)" in filtered
    assert C not in filtered.replace(f"http://host/runbooks/{C}/", "")
    assert "[docs](https://example.com/x)" in filtered
    html, unwrapped = answer_html(markdown=filtered, ranks={A: 1}, audit_log_id="log-1")
    assert unwrapped == 1  # the external [docs] link: only presented runbooks stay links
    assert f'href="/runbooks/{A}/?from=log-1"' in html
    assert f'data-runbook-id="{A}"' in html and 'data-rank="1"' in html and 'data-audit-log-id="log-1"' in html
    assert f"/runbooks/{C}/" not in html.replace(f"http://host/runbooks/{C}/", "")
    assert 'href="https://example.com/x"' not in html and "docs" in html


def test_rendered_answer_is_inert():
    markdown = (
        "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
        "<iframe src=https://evil.example></iframe> [x](JaVaScRiPt:alert(4))"
    )
    html, _ = answer_html(markdown=markdown, ranks={}, audit_log_id="")
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<iframe" not in lowered
    assert 'href="javascript' not in lowered


def test_offline_link_text_cannot_inject_another_link():
    evil = runbook_context(rank=1, id=A, title=f"X](/runbooks/{C}/) [y", confidence=0.9, success_rate=None,
                          success_samples=0, can_execute=True, description="d")
    prompt = prompt_build(question="q", history=[], runbooks=[evil], strategy="single_solution")
    filtered, removed = answer_links_filter(markdown=retrieval_answer(prompt=prompt), presented_ids={A})
    html, _ = answer_html(markdown=filtered, ranks={A: 1}, audit_log_id="l")
    assert removed == 0
    assert C not in html.split(">X](")[0]
    assert html.count('class="runbook-link"') == 1 and f"/runbooks/{A}/" in html


def test_runbook_links_carry_the_recommendation_to_the_detail_page():
    log_id = "44444444-4444-4444-4444-444444444444"
    markdown = f"Use [Disk](/runbooks/{A}/) or [again](https://any.host/runbooks/{A.upper()}/?x=1#s) and [docs](https://example.com/x?a=1)."
    html, unwrapped = answer_html(markdown=markdown, ranks={A: 2}, audit_log_id=log_id)
    assert unwrapped == 1
    # Every presented runbook link is rewritten to the local page with ?from=; other links become text.
    assert html.count(f'href="/runbooks/{A}/?from={log_id}"') == 2
    assert html.count(f'data-audit-log-id="{log_id}"') == 2 and html.count('data-rank="2"') == 2
    assert "example.com" not in html and "docs" in html


def test_runbook_link_without_an_audit_log_has_no_from():
    html, _ = answer_html(markdown=f"[Disk](/runbooks/{A}/)", ranks={A: 1}, audit_log_id=None)
    assert f'href="/runbooks/{A}/"' in html and "from=" not in html

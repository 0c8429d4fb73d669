"""Pure helpers that turn an answer into what the engineer sees: filtered links, safe HTML, cards.

Used when an answer is produced and again when a conversation is reloaded, so both look the same.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

from aihelper.core.rendering import render_markdown

# An inline Markdown link or image, and a reference definition; the URL is group "url".
_INLINE_LINK = re.compile(
    r"(?<!\\)(?P<bang>!?)\[(?P<text>(?:\\.|[^\]\\\n])*)\]\(\s*<?(?P<url>[^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_AUTOLINK = re.compile(r"<(?P<url>[a-z][a-z0-9+.-]*:[^<>\s]*)>", re.IGNORECASE)
_REFERENCE_DEF = re.compile(r"^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?(?P<url>\S+?)>?(?:[ \t]+.*)?$", re.MULTILINE)
# Any link whose path is under /runbooks/ (relative or on any host), with the id it names if any.
_RUNBOOK_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?(?://[^/]*)?/runbooks/(?P<id>[^/?#]*)", re.IGNORECASE)
# A URL that leaves this site: any scheme (http, https, mailto...) or a protocol-relative //host.
_OFF_SITE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
# Anchors as serialised by the sanitizer: attributes double-quoted, quotes inside escaped.
_ANCHOR = re.compile(r'<a href="(?P<href>[^"]*)"(?P<attrs>[^>]*)>(?P<inner>.*?)</a>', re.DOTALL)


def runbook_url(runbook_id) -> str:
    return f"/runbooks/{runbook_id}/"


def recommended_runbook_url(runbook_id, audit_log_id) -> str:
    """The runbook page as reached from a recommendation: ``?from=`` lets the page record viewed_detail.

    The UI that shows the link adds ``&source=`` when it is followed (the same HTML serves both UIs).
    """
    if not audit_log_id:
        return runbook_url(runbook_id)
    return f"{runbook_url(runbook_id)}?{urlencode({'from': str(audit_log_id)})}"


def _runbook_id(url: str) -> str | None:
    """The id a /runbooks/... URL points at ('' for a listing), None when it is not a runbook URL."""
    match = _RUNBOOK_URL.match(html.unescape(url).strip())
    return None if match is None else match.group("id").lower()


def _normalise_id(value) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value).lower()


def answer_links_filter(*, markdown: str, presented_ids: set[str]) -> tuple[str, int]:
    """Remove links to runbooks that were not presented (their text stays); returns (markdown, removed).

    Only runbook links are touched: the prompt allows no other link, and the sanitizer already
    neutralises dangerous URLs.
    """
    allowed = {_normalise_id(value) for value in presented_ids}
    removed = 0

    def inline(match: re.Match) -> str:
        nonlocal removed
        runbook_id = _runbook_id(match.group("url"))
        if runbook_id is None or _normalise_id(runbook_id) in allowed:
            return match.group(0)
        removed += 1
        return match.group("text")

    def inline_url(match: re.Match) -> str:
        nonlocal removed
        runbook_id = _runbook_id(match.group("url"))
        if runbook_id is None or _normalise_id(runbook_id) in allowed:
            return match.group(0)
        removed += 1
        return match.group("url")

    def reference(match: re.Match) -> str:
        nonlocal removed
        runbook_id = _runbook_id(match.group("url"))
        if runbook_id is None or _normalise_id(runbook_id) in allowed:
            return match.group(0)
        removed += 1
        return ""

    markdown = _INLINE_LINK.sub(inline, markdown or "")
    markdown = _AUTOLINK.sub(inline_url, markdown)
    markdown = _REFERENCE_DEF.sub(reference, markdown)
    return markdown, removed


def answer_html(*, markdown: str, ranks: Mapping[str, int], audit_log_id) -> tuple[str, int]:
    """Sanitised HTML of an answer; presented runbook links carry data attributes for click tracking
    and ``?from=<audit_log_id>`` so that opening them records ``viewed_detail``.

    Any runbook link that still points outside ``ranks`` (autolinks, raw URLs) is unwrapped.
    Returns (html, links unwrapped here).
    """
    ranks = {_normalise_id(key): rank for key, rank in ranks.items()}
    unwrapped = 0

    def anchor(match: re.Match) -> str:
        nonlocal unwrapped
        runbook_id = _runbook_id(match.group("href"))
        if runbook_id is None:
            if not _OFF_SITE.match(html.unescape(match.group("href")).strip()):
                return match.group(0)
            # Prompt rule 3: the model links only presented runbooks; an off-site link (one a runbook's text
            # talked it into, say) becomes its text, so no answer sends an engineer elsewhere.
            unwrapped += 1
            return match.group("inner")
        runbook_id = _normalise_id(runbook_id)
        if runbook_id not in ranks:
            unwrapped += 1
            return match.group("inner")
        href = html.escape(recommended_runbook_url(runbook_id, audit_log_id))
        return (
            f'<a href="{href}" class="runbook-link" data-runbook-id="{runbook_id}"'
            f' data-rank="{ranks[runbook_id]}" data-audit-log-id="{html.escape(str(audit_log_id or ""))}">'
            f"{match.group('inner')}</a>"
        )

    return _ANCHOR.sub(anchor, render_markdown(markdown)), unwrapped

"""What an alert says, as a search query and as a link: pure functions on plain data (no database).

The query (``alert_query``) is what the recommendation searches with (alerts/recommending.py); it is the
alert's name twice -- as written, so the search's identifier evidence (``runbooks.lexical.names_runbook``)
sees the name as one word, and split at its capitals (``KubePodCrashLooping`` -> "Kube Pod Crash Looping",
``runbooks.embeddings.split_camel_case``), which is what the embedding model can read -- then the
``summary``, ``description`` and ``message`` annotations, then the values of the labels that name what is
affected (``service``, ``job``, ...). Label values that only identify an instance (IPs, ports, pod hashes,
numbers) are left out: no runbook mentions them, and the query coverage ignores them anyway.

The link (``runbook_url`` and friends) is normalised here, and turned into the slugs it could name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from runbooks.embeddings import split_camel_case

# Annotations whose text describes the problem, in the order they are searched.
TEXT_ANNOTATIONS = ("summary", "description", "message")
# Labels that name what is affected in words an engineer (and a runbook) uses. Not ``instance`` / ``pod`` /
# ``node`` (host names and hashes), not ``severity`` (every runbook is for some severity), not ``namespace``
# (mostly "default", "monitoring", "kube-system": the same few words in every alert).
QUERY_LABELS = ("service", "job", "app", "app_kubernetes_io_name", "component", "container", "integration")
# Where alert rules put the runbook's address: Prometheus' and Grafana's convention is the ``runbook_url``
# annotation; some rule sets write ``runbook`` or ``runbookURL``. Compared without case or ``_``/``-``.
RUNBOOK_URL_KEYS = ("runbookurl", "runbook", "runbooklink")
LABEL_VALUE_MAX_CHARS = 80

# An instance rather than a kind of thing: an address, a port, a number, a hash or a pod name's suffix.
_INSTANCE_VALUE = re.compile(
    r"\d{1,3}(?:\.\d{1,3}){3}"  # IPv4
    r"|:\d+$"  # host:port
    r"|^[\d.:]+$"  # numbers, IPv6-ish
    r"|[0-9a-f]{12,}"  # hashes
    r"|-[a-z0-9]{8,10}-[a-z0-9]{5}$",  # deployment pod names (app-5d8f7c9b6d-x7k2p)
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class AlertText:
    """The parts of an alert the query is built from (copied off the Alert row)."""

    alertname: str = ""
    annotations: Mapping[str, object] = field(default_factory=dict)
    labels: Mapping[str, object] = field(default_factory=dict)


def alertname_words(alertname: str) -> str:
    """``KubePodCrashLooping`` -> "Kube Pod Crash Looping", acronyms kept whole (``TLSCertificateExpiringSoon``
    -> "TLS Certificate Expiring Soon"); ``_`` and ``-`` become spaces (``node_disk_full``)."""
    return " ".join(split_camel_case(alertname.replace("_", " ").replace("-", " ")).split())


def _text(value: object) -> str:
    return _SPACE.sub(" ", value).strip() if isinstance(value, str) else ""


def _label_values(labels: Mapping[str, object]) -> list[str]:
    values = []
    for key in QUERY_LABELS:
        value = _text(labels.get(key))
        if value and len(value) <= LABEL_VALUE_MAX_CHARS and not _INSTANCE_VALUE.search(value):
            values.append(value)
    return list(dict.fromkeys(values))


def _bounded(text: str, max_chars: int) -> str:
    """At most ``max_chars``, cut at a word boundary when there is one in the last fifth."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space].rstrip() if space > max_chars * 0.8 else cut


def alert_query(alert: AlertText, *, max_chars: int) -> str:
    """The search query for ``alert`` (see the module doc), at most ``max_chars`` long; "" when the alert
    says nothing searchable. The name comes first, so a long description never pushes it out."""
    name = _text(alert.alertname)
    words = alertname_words(name)
    head = f"{name} ({words})" if name and words != name else name
    parts = [head] if head else []
    for key in TEXT_ANNOTATIONS:
        text = _text(alert.annotations.get(key))
        if text and text not in parts:
            parts.append(text)
    values = _label_values(alert.labels)
    if values:
        parts.append(" ".join(values))
    return _bounded("\n".join(parts), max_chars)


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def runbook_url(annotations: Mapping[str, object], labels: Mapping[str, object] | None = None) -> str:
    """The runbook address the alert rule gives: an annotation first (``runbook_url``, ``runbook``,
    ``runbookURL``), then a label of those names; only http(s) addresses; "" when there is none."""
    for source in (annotations, labels or {}):
        found = {_key(key): value for key, value in source.items() if isinstance(key, str)}
        for key in RUNBOOK_URL_KEYS:
            value = _text(found.get(key))
            if value.lower().startswith(("http://", "https://")):
                return value
    return ""


def normalise_url(url: str) -> str:
    """``url`` compared as an address: scheme and host in lower case, no fragment, no trailing ``/``, no
    default port. "" when it is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def url_variants(url: str) -> list[str]:
    """The stored ``source_url`` values (lower-cased) that are this address: as written, normalised, and
    normalised with a trailing ``/``."""
    normal = normalise_url(url)
    if not normal:
        return []
    written = url.strip()
    return list(dict.fromkeys(value.lower() for value in (written, normal, f"{normal}/")))


_PAGE_SUFFIX = re.compile(r"\.(?:md|markdown|html?)$", re.IGNORECASE)


def url_slugs(url: str, *, max_segments: int = 3) -> list[str]:
    """The runbook slugs the address's path could end in, longest first: ``.../runbooks/alertmanager/
    AlertmanagerClusterCrashlooping.md`` -> ["runbooks/alertmanager/alertmanagerclustercrashlooping",
    "alertmanager/alertmanagerclustercrashlooping", "alertmanagerclustercrashlooping"]."""
    normal = normalise_url(url)
    if not normal:
        return []
    segments = [segment for segment in urlsplit(normal).path.lower().split("/") if segment]
    if not segments:
        return []
    segments[-1] = _PAGE_SUFFIX.sub("", segments[-1])
    if not segments[-1]:
        return []
    count = min(max_segments, len(segments))
    return ["/".join(segments[-size:]) for size in range(count, 0, -1)]

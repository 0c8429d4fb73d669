"""Secrets pasted by engineers (or carried by alerts) are replaced before anything stores, logs, embeds or
sends the text: ``redact(text)`` -> ``Redacted(text, kinds)``.

Detection: Yelp's detect-secrets plugins (cloud and SaaS token formats, private keys, JWTs, basic-auth
URLs, high-entropy quoted strings, secret-sounding keywords) used as a library — only their
``analyze_string``, never their network verification — plus rules for what they miss in incident text
(database URLs with passwords, ``password=``/``token:`` pairs without quotes, ``Authorization`` headers,
bearer tokens, whole PEM blocks, kubeconfig credentials, Anthropic/Google keys). A secret becomes a typed
placeholder (``[redacted: aws-access-key]``) so the rest of the text still reads. docs/security.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

PLACEHOLDER = "[redacted: {kind}]"
# What text older than the retention period becomes (docs/operations.md, "Retention").
RETENTION_MARKER = "[removed after the retention period]"
_PLACEHOLDER_RE = re.compile(r"\[redacted: [a-z0-9-]+\]")


@dataclass(frozen=True)
class Redacted:
    """The text with every secret replaced, and one kind per secret removed (never the values)."""

    text: str
    kinds: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.kinds)


# detect-secrets' token formats: the regexes the library compiles (``denylist``), each with substrings one
# of which every match contains (case-sensitive when they hold a capital), so a text without them skips
# the plugin: the rules run on every chat turn. Spans come from the regexes directly: ``analyze_string``
# yields a capture group where there is one, which for some plugins is only the prefix (``ghp``).
_FORMAT_PLUGINS: tuple[tuple[str, RegexBasedDetector, tuple[str, ...]], ...] = (
    ("aws-access-key", AWSKeyDetector(), ("A3T", "ABIA", "ACCA", "AKIA", "ASIA", "aws")),
    ("artifactory-token", ArtifactoryDetector(), ("AKC", "AP")),
    ("azure-storage-key", AzureStorageKeyDetector(), ("accountkey=",)),
    ("discord-token", DiscordBotTokenDetector(), (".",)),
    ("github-token", GitHubTokenDetector(), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    ("gitlab-token", GitLabTokenDetector(), ("gl", "gr1348941")),
    ("jwt", JwtTokenDetector(), ("eyj",)),
    ("mailchimp-key", MailchimpDetector(), ("-us",)),
    ("npm-token", NpmDetector(), ("_authtoken",)),
    ("openai-key", OpenAIDetector(), ("t3blbkfj",)),
    ("pypi-token", PypiTokenDetector(), ("pypi-",)),
    ("sendgrid-key", SendGridDetector(), ("sg.",)),
    ("slack-token", SlackDetector(), ("xox", "hooks.slack.com")),
    ("square-token", SquareOAuthDetector(), ("sq0csp-",)),
    ("stripe-key", StripeDetector(), ("k_live_",)),
    ("telegram-token", TelegramBotTokenDetector(), (":",)),
    ("twilio-key", TwilioKeyDetector(), ("AC", "SK")),
)
# A capture group at least this long is the secret itself (AWS's keyword form, npm's token); a shorter
# one is a prefix alternative, and the whole match is the secret.
_SECRET_GROUP_MIN = 16
# A found secret at least this long is also replaced where it appears again without its context.
_REPEAT_MIN = 6
_TRIM = " \t\r\n\"'=:"
# Quoted strings that look random (detect-secrets' default limits). A quoted hex string right after a
# word that names an identifier (a git SHA, trace id, etag, digest) is not a secret.
_ENTROPY_PLUGINS = ((Base64HighEntropyString(limit=4.5), 20), (HexHighEntropyString(limit=3.0), 32))
_HEX = frozenset("0123456789abcdefABCDEF")
_IDENTIFIER_BEFORE = re.compile(
    r"(?i)(?:sha\d*|commit|before|after|trace|span|etag|digest|hash|id|revision|rev|parent|tree|request|req|"
    r"checksum|version|uuid|object|blob|ref|head|base)[\"']?[ \t]*[:=,(]?[ \t]*[\"']?$"
)
# Token characters: a format match is extended over them, because some library patterns stop early
# (a JWT's signature, 38-character Discord tails, 107-character Stripe keys, sk-proj- OpenAI keys).
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=")

# Rules of our own: (kind, lower-case trigger substrings, pattern, group of the secret). Overlapping
# findings merge into the widest (a PEM block over a key line inside it).
_SECRET_KEY_WORDS = (
    r"passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"client[_-]?secret|credentials?|auth[_-]?key|session[_-]?key|signing[_-]?key|salt|hmac"
)
# Values that only stand for a secret: shell/template variables, placeholders, masks.
_NOT_A_VALUE = re.compile(
    r"^(?:\$|\{\{|<|%|\*+$|x{3,}|\.\.\.|\[redacted|none$|null$|true$|false$|required$|optional$|changeme$|"
    r"\.{0,2}/|~/|\d{4}-\d{2}-\d{2})",
    re.IGNORECASE,
)
# The kind of a rule's finding named by the key in front of it (--token X is a token).
_BY_KEY = "by-key"
_RULES: tuple[tuple[str, tuple[str, ...], re.Pattern, int], ...] = (
    (
        "private-key",
        ("private key",),
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
            r"(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        0,
    ),
    (
        "certificate",
        ("begin certificate",),
        re.compile(r"-----BEGIN CERTIFICATE-----.*?(?:-----END CERTIFICATE-----|\Z)", re.DOTALL),
        0,
    ),
    # postgres://user:pass@host, redis://:pass@host, https://user:pass@host
    ("url-password", ("://",), re.compile(r"://[^\s:/@'\"]*:([^\s@/'\"]+)@[^\s/@'\"]"), 1),
    (
        "authorization",
        ("authorization",),
        re.compile(
            r"(?i)authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:(?:bearer|basic|token|digest|apikey)\s+)?"
            r"([^\s\"',;]{6,})"
        ),
        1,
    ),
    # Basic credentials wherever they appear (YAML header lists, curl -H): base64 with a digit or padding.
    (
        "authorization",
        ("basic",),
        re.compile(
            r"\bBasic\s+((?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{8,}={0,2}"
            r"|(?=[A-Za-z0-9+/]*[A-Z])(?=[A-Za-z0-9+/]*[a-z])[A-Za-z0-9+/]{12,}={0,2})"
        ),
        1,
    ),
    (
        "openai-key",
        ("sk-proj-", "sk-svcacct-", "sk-admin-"),
        re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"),
        0,
    ),
    ("jwt", ("eyj",), re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"), 0),
    ("github-token", ("github_pat_",), re.compile(r"github_pat_[0-9A-Za-z_]{22,}"), 0),
    ("square-token", ("sq0atp-", "EAAA"), re.compile(r"sq0atp-[0-9A-Za-z_-]{22,}|EAAA[0-9A-Za-z_-]{56,}"), 0),
    ("vault-token", ("hvs.", "hvb."), re.compile(r"\bhv[sb]\.[A-Za-z0-9_-]{20,}"), 0),
    ("bearer-token", ("bearer",), re.compile(r"(?i)bearer\s+([A-Za-z0-9\-._~+/]{16,}=*)"), 1),
    ("anthropic-key", ("sk-ant-",), re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,}"), 0),
    ("google-api-key", ("aiza",), re.compile(r"AIza[0-9A-Za-z_\-]{35}"), 0),
    ("google-oauth-token", ("ya29.",), re.compile(r"ya29\.[0-9A-Za-z_\-]{20,}"), 0),
    (
        "aws-secret-key",
        ("aws",),
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key[\"']?(?:[ \t]*[:=][ \t]*|[ \t]+)[\"']?"
            r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        1,
    ),
    (
        "kubeconfig-credential",
        ("-data:",),
        re.compile(r"(?:client-key|client-certificate|certificate-authority)-data:\s*([A-Za-z0-9+/=]{20,})"),
        1,
    ),
    # Command-line flags: --password X, --token=X, --account-key X, mysql -pX, redis-cli -a X.
    (
        _BY_KEY,
        ("--pass", "--token", "--secret", "--api-key", "--access-key", "--auth", "--account-key", "--sas-token",
         "--client-secret"),
        re.compile(
            r"--(?:password|passwd|pass|token|secret|api-key|access-key|auth|account-key|sas-token|client-secret)"
            r"[= ][\"']?([^\s\"']{6,})"
        ),
        1,
    ),
    ("password", ("mysql",), re.compile(r"\bmysql(?:dump|admin|import|sh|slap|check)?\b[^\n]*? -p([^\s\"']{6,})"), 1),
    # Kubernetes env lists: - name: DB_PASSWORD / value: ...
    (
        _BY_KEY,
        ("value:",),
        re.compile(
            r"(?i)name:[ \t]*[\"']?([a-z0-9_]*(?:passw(?:or)?d|secret|token|api_?key|access_?key)[a-z0-9_]*)[\"']?"
            r"[ \t]*\r?\n[ \t]*value:[ \t]*[\"']?([^\s\"']{6,})"
        ),
        2,
    ),
    ("password", ("redis-cli",), re.compile(r"\bredis-cli\b[^\n]*? -a [\"']?([^\s\"']{6,})"), 1),
)
# key = value pairs whose key names a secret (DB_PASSWORD=..., "api_key": "...", token: ...): found from
# the occurrences of these roots (a plain substring search), then the assignment is matched right there.
_KEY_ROOTS = ("pass", "pwd", "secret", "token", "key", "credential", "salt", "hmac")
_SECRET_KEY = re.compile(rf"(?i)(?:{_SECRET_KEY_WORDS})")
_KEY_CHARS = re.compile(r"[A-Za-z0-9_.-]*")
# Keys that name something about a secret, not the secret: secretName, DB_PASSWORD_FILE, tokenFile,
# password_changed_at, token_url, api_key_id.
_NOT_A_SECRET_KEY = re.compile(
    r"(?i)(?:name|names|file|path|ref|_at|id|ids|type|url|uri|dir|length|count|version|policy|mode|ttl|"
    r"expiry|expires|expiration|endpoint|format|hash|prefix)$"
)
_ASSIGNED_VALUE = re.compile(
    r"[\"']?[ \t]*(?:=|:=|=>|:)[ \t]*(?:([\"'])([^\"'\n]{6,200}?)\1|([^\s\"'&,;<>()\[\]{}]{6,}))"
)
_PEM_RULE = _RULES[0][2]
_PRIVATE_KEY = PrivateKeyDetector()


def _value_spans(text: str, value: str) -> Iterator[tuple[int, int]]:
    start = text.find(value)
    while start != -1:
        yield start, start + len(value)
        start = text.find(value, start + len(value))


def _kind_for_key(key_text: str) -> str:
    key = key_text.lower()
    for word, kind in (("pass", "password"), ("pwd", "password"), ("token", "token"), ("api", "api-key")):
        if word in key:
            return kind
    return "secret"


def _triggered(triggers: tuple[str, ...], text: str, lowered: str) -> bool:
    return any(trigger in (text if trigger != trigger.lower() else lowered) for trigger in triggers)


def _assignment_spans(text: str, lowered: str) -> Iterator[tuple[int, int, str]]:
    seen: set[int] = set()
    for root in _KEY_ROOTS:
        position = lowered.find(root)
        while position != -1:
            key_start = position
            while key_start > 0 and (text[key_start - 1].isalnum() or text[key_start - 1] in "_.-"):
                key_start -= 1
            key_end = _KEY_CHARS.match(text, position).end()
            position = lowered.find(root, key_end)
            if key_start in seen:
                continue
            seen.add(key_start)
            key = text[key_start:key_end]
            match = _ASSIGNED_VALUE.match(text, key_end)
            if match is None or not _SECRET_KEY.search(key) or _NOT_A_SECRET_KEY.search(key):
                continue
            group = 2 if match.group(2) is not None else 3
            value = match.group(group)
            if _NOT_A_VALUE.match(value) or not _looks_secret(value):
                continue
            yield match.start(group), match.end(group), _kind_for_key(key)


def _format_spans(text: str, lowered: str) -> Iterator[tuple[int, int, str]]:
    for kind, plugin, triggers in _FORMAT_PLUGINS:
        if not _triggered(triggers, text, lowered):
            continue
        for pattern in plugin.denylist:
            for match in pattern.finditer(text):
                groups = [index for index in range(1, (pattern.groups or 0) + 1) if match.group(index)]
                index = groups[-1] if groups and len(match.group(groups[-1])) >= _SECRET_GROUP_MIN else 0
                start, end = match.span(index)
                value = text[start:end]
                stripped = value.strip(_TRIM)
                if len(stripped) < 6 or _NOT_A_VALUE.match(stripped):
                    continue
                start += len(value) - len(value.lstrip(_TRIM))
                end = start + len(stripped)
                while end < len(text) and text[end] in _TOKEN_CHARS:
                    end += 1
                yield start, end, kind


def _candidates(text: str) -> Iterator[tuple[int, int, str]]:
    lowered = text.lower()
    yield from _format_spans(text, lowered)
    for plugin, min_length in _ENTROPY_PLUGINS:
        for value in set(plugin.analyze_string(text)):
            if len(value) < min_length or plugin.calculate_shannon_entropy(value) < plugin.entropy_limit:
                continue
            for start, end in _value_spans(text, value):
                if set(value) <= _HEX and _IDENTIFIER_BEFORE.search(text[max(0, start - 24) : start]):
                    continue
                yield start, end, "high-entropy-string"
    for kind, triggers, pattern, group in _RULES:
        if not _triggered(triggers, text, lowered):
            continue
        for match in pattern.finditer(text):
            value = match.group(group)
            if value and not _NOT_A_VALUE.match(value):
                named = kind if kind != _BY_KEY else _kind_for_key(text[match.start() : match.start(group)])
                yield match.start(group), match.end(group), named
    yield from _assignment_spans(text, lowered)
    if "private key" in lowered and not _PEM_RULE.search(text):
        for value in set(_PRIVATE_KEY.analyze_string(text)):
            for start, end in _value_spans(text, value):
                yield start, end, "private-key"


def _looks_secret(value: str) -> bool:
    """A value after ``password=``/``token:``: words of prose (``token: expired``) are not secrets; a
    value with a digit or a symbol, or a long mixed-case one, is."""
    if any(char.isdigit() for char in value) or any(not char.isalnum() for char in value):
        return not value.replace(".", "").replace("-", "").replace("_", "").isalpha() or len(value) >= 12
    return len(value) >= 12 and not value.islower()


def _merge(spans: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping findings become one: the widest span, its kind."""
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans, key=lambda span: (span[0], -(span[1] - span[0]))):
        if merged and start < merged[-1][1]:
            last_start, last_end, last_kind = merged[-1]
            if end - start > last_end - last_start:
                merged[-1] = (last_start, max(end, last_end), kind)
            else:
                merged[-1] = (last_start, max(end, last_end), last_kind)
            continue
        merged.append((start, end, kind))
    return merged


def redact(text: str) -> Redacted:
    """``text`` with every secret found replaced by ``[redacted: <kind>]``. Idempotent."""
    if not text:
        return Redacted(text or "")
    found = [span for span in _merge(_candidates(text)) if not _PLACEHOLDER_RE.fullmatch(text[span[0] : span[1]])]
    # A secret found once is that secret wherever else it appears in the text, with or without context.
    again = [
        (start, end, kind)
        for first, last, kind in found
        if last - first >= _REPEAT_MIN
        for start, end in _value_spans(text, text[first:last])
    ]
    spans = _merge(found + again)
    if not spans:
        return Redacted(text)
    pieces, position = [], 0
    for start, end, kind in spans:
        pieces += [text[position:start], PLACEHOLDER.format(kind=kind)]
        position = end
    pieces.append(text[position:])
    return Redacted("".join(pieces), tuple(kind for _, _, kind in spans))


def redact_json(value: Any) -> tuple[Any, tuple[str, ...]]:
    """Every string (keys included) of a JSON value redacted; returns (value, kinds)."""
    if isinstance(value, str):
        result = redact(value)
        return result.text, result.kinds
    if isinstance(value, Mapping):
        out, kinds = {}, ()
        for key, item in value.items():
            new_key, key_kinds = redact_json(key) if isinstance(key, str) else (key, ())
            new_item, item_kinds = redact_json(item)
            out[new_key] = new_item
            kinds += key_kinds + item_kinds
        return out, kinds
    if isinstance(value, list | tuple):
        items = [redact_json(item) for item in value]
        return [item for item, _ in items], tuple(kind for _, item_kinds in items for kind in item_kinds)
    return value, ()

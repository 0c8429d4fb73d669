"""Secrets in engineers' text become typed placeholders; ordinary incident text is left alone."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from aihelper.core.logjson import JsonFormatter
from aihelper.core.redaction import redact, redact_json

# (kind expected, text, the secret inside it). Values are made up in the formats the detectors know.
SECRETS = [
    ("aws-access-key", "export AWS_ACCESS_KEY_ID=AKIAQ3EGRZ7XK2LMN4PB", "AKIAQ3EGRZ7XK2LMN4PB"),
    (
        "aws-secret-key",
        "aws_secret_access_key = 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",
        "Zq3nV8wP1tLk9rXc2Hs7Ym4Bd6Fg0Ja5Ue8Wi3Ko",
    ),
    (
        "github-token",
        "git clone https://x:ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8@github.com/o/r",
        "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    ),
    (
        "github-token",
        "GH token github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP",
        "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP",
    ),
    ("gitlab-token", "CI uses glpat-Xy7zQ2wE9rT4uI1oP6aS for the mirror", "glpat-Xy7zQ2wE9rT4uI1oP6aS"),
    (
        "slack-token",
        "SLACK_BOT=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    (
        "slack-token",
        "webhook https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/abcdefGHIJKL123456mnop",
        "abcdefGHIJKL123456mnop",
    ),
    (
        "stripe-key",
        "stripe key sk_live_51HqLyjWDarjtT1zdp7dcXyZ0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
        "sk_live_51HqLyjWDarjtT1zdp7dcXyZ0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
    ),
    (
        "sendgrid-key",
        "SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ01234 set",
        "SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ01234",
    ),
    (
        "jwt",
        '{"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJleHAiOjE3MDB9.Xk2v9QpLm3Rt8YwZ1aBcDeFgHiJk"}',
        "Xk2v9QpLm3Rt8YwZ1aBcDeFgHiJk",
    ),
    (
        "anthropic-key",
        "ANTHROPIC=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdEFGH",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdEFGH",
    ),
    (
        "google-api-key",
        "maps key AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q in the config",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    ),
    ("url-password", "could not connect to postgres://app:Pg-s3cret-42@db.prod:5432/orders", "Pg-s3cret-42"),
    ("url-password", "REDIS_URL=redis://:r3d1sP4ssw0rd@cache:6379/0", "r3d1sP4ssw0rd"),
    (
        "authorization",
        "curl -H 'Authorization: Bearer 8f3kQ9zL2mN7xR4tV1yB6cW0pJ5sH' https://api",
        "8f3kQ9zL2mN7xR4tV1yB6cW0pJ5sH",
    ),
    ("authorization", "headers: ['Basic YWRtaW46aHVudGVyMg==']", "YWRtaW46aHVudGVyMg=="),
    ("password", "DB_PASSWORD=Tr0ub4dor&3x", "Tr0ub4dor&3x"),
    ("api-key", '{"api_key": "9bX2kLq7Zr4TnW8v"}', "9bX2kLq7Zr4TnW8v"),
    ("password", "mysqldump -u backup -pS3cretBackup1 orders > dump.sql", "S3cretBackup1"),
    ("password", "redis-cli -h cache -a hunter2-redis-42 ping", "hunter2-redis-42"),
    ("password", "env:\n  - name: DB_PASSWORD\n    value: pr0d-Passw0rd!", "pr0d-Passw0rd!"),
    (
        "private-key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7\nQk9z\n-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAx7",
    ),
    (
        "kubeconfig-credential",
        "    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=",
        "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=",
    ),
    ("vault-token", "vault login hvs.CAESIJlU9JMYEhOPYv4gY1LkfSJzdHR5", "hvs.CAESIJlU9JMYEhOPYv4gY1LkfSJzdHR5"),
    (
        "high-entropy-string",
        'signer = Signer("q8Zx/3Lk+Wm9Rt2Yv5Nb7Hc1Jd4Fg6Sa0Pe==")',
        "q8Zx/3Lk+Wm9Rt2Yv5Nb7Hc1Jd4Fg6Sa0Pe==",
    ),
]

CLEAN = [
    "Pod checkout-7d9f8b6c5-x2k4j is crash looping in namespace payments",
    "kubectl get secret my-tls -n prod -o yaml; secretName: web-frontend-tls",
    "the token expired and the password reset failed for 3 users",
    "export PGPASSWORD=$DB_PASSWORD; psql -h db -U app",
    "curl -H \"Authorization: Bearer ${TOKEN}\" https://api/healthz",
    "image ghcr.io/acme/api@sha256:4f1c2b7e8d9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c",
    '{"before": "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "trace_id": "0af7651916cd43dd8448eb211c80319c"}',
    "tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
    "request 3f2a9c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b failed at 2026-11-30T17:00:00Z from 10.0.4.17",
    "Celery broker amqp://guest:**@rabbitmq:5672// reconnecting",
]


@pytest.mark.parametrize(
    ("kind", "text", "secret"), SECRETS, ids=[f"{kind}-{i}" for i, (kind, _, _) in enumerate(SECRETS)]
)
def test_every_known_format_is_replaced_by_its_typed_placeholder(kind, text, secret):
    result = redact(text)
    assert secret not in result.text
    assert f"[redacted: {kind}]" in result.text
    assert kind in result.kinds


@pytest.mark.parametrize("text", CLEAN)
def test_ordinary_incident_text_is_left_alone(text):
    assert redact(text).text == text
    assert redact(text).kinds == ()


def test_the_rest_of_the_text_still_reads_and_redacting_twice_changes_nothing():
    text = "DATABASE_URL=postgres://app:Pg-s3cret-42@db:5432/app is refused since the failover; AKIAQ3EGRZ7XK2LMN4PB"
    once = redact(text)
    assert once.text == (
        "DATABASE_URL=postgres://app:[redacted: url-password]@db:5432/app is refused since the failover;"
        " [redacted: aws-access-key]"
    )
    assert once.count == 2
    twice = redact(once.text)
    assert (twice.text, twice.kinds) == (once.text, ())


def test_json_strings_and_keys_are_redacted_at_any_depth():
    value = {"page": "/alerts", "headers": [{"Authorization": "Bearer 8f3kQ9zL2mN7xR4tV1yB6cW0pJ5sH"}],
             "AKIAQ3EGRZ7XK2LMN4PB": 1, "n": 3}
    cleaned, kinds = redact_json(value)
    assert "8f3kQ9zL2mN7xR4tV1yB6cW0pJ5sH" not in json.dumps(cleaned)
    assert "AKIAQ3EGRZ7XK2LMN4PB" not in json.dumps(cleaned)
    assert cleaned["page"] == "/alerts" and cleaned["n"] == 3
    assert sorted(kinds) == ["aws-access-key", "bearer-token"]


def test_json_logs_never_carry_a_pasted_secret():
    try:
        raise ValueError("cannot parse postgres://app:Pg-s3cret-42@db:5432/app")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "query was %s", ("token=9bX2kLq7Zr4TnW8v",), None
        )
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "9bX2kLq7Zr4TnW8v" not in line and "Pg-s3cret-42" not in line
    assert "[redacted: token]" in line and "[redacted: url-password]" in line

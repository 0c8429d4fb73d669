"""Settings fail fast with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from aihelper.core import env

ROOT = Path(__file__).resolve().parents[2]


def test_env_int_names_the_variable(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "many")
    with pytest.raises(ImproperlyConfigured, match="SOME_NUMBER='many' is invalid: expected an integer"):
        env.env_int("SOME_NUMBER", 3)


def test_env_bool_rejects_unknown_words(monkeypatch):
    monkeypatch.setenv("A_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="A_FLAG"):
        env.env_bool("A_FLAG", False)


def test_env_float_bounds(monkeypatch):
    monkeypatch.setenv("A_RATIO", "1.5")
    with pytest.raises(ImproperlyConfigured, match="must be <= 1.0"):
        env.env_float("A_RATIO", 0.5, minimum=0.0, maximum=1.0)


def test_required_variable_missing(monkeypatch):
    monkeypatch.delenv("MUST_HAVE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="MUST_HAVE is required"):
        env.env_str("MUST_HAVE")


def _settings_process(**overrides):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    environment.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", "import aihelper.settings"], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_production_without_secret_key_fails_at_start_up():
    result = _settings_process(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_database_url_must_be_postgresql():
    result = _settings_process(DEBUG="1", DATABASE_URL="mysql://u:p@localhost/db")
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr


def test_bad_threshold_fails_at_start_up():
    result = _settings_process(DEBUG="1", AIHELPER_CONFIDENCE_THRESHOLD="2")
    assert "AIHELPER_CONFIDENCE_THRESHOLD" in result.stderr and result.returncode != 0


def test_a_bad_schedule_fails_at_start_up_and_an_empty_one_turns_it_off():
    result = _settings_process(DEBUG="1", SCHEDULE_APPLY_RETENTION="61 * * *")
    assert result.returncode != 0
    assert "SCHEDULE_APPLY_RETENTION must be a cron line" in result.stderr
    off = subprocess.run(
        [sys.executable, "-c", "import aihelper.settings as s; print(repr(s.TASK_SCHEDULES['apply_retention']))"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "DEBUG": "1",
            "SCHEDULE_APPLY_RETENTION": "",
        },
        capture_output=True,
        text=True,
    )
    assert off.stdout.strip() == "''"

"""The default Anthropic model must be a model the pinned SDK knows and does not list as deprecated: a
deprecated model stops answering at its end of life and every chat answer would then be degraded."""

import os
import subprocess
import sys
import typing
from pathlib import Path

from anthropic.resources.messages.messages import DEPRECATED_MODELS
from anthropic.types import Model

ROOT = Path(__file__).resolve().parents[2]


def _code_default() -> str:
    """settings.ANTHROPIC_MODEL with ANTHROPIC_MODEL unset (a developer's exported value must not hide it)."""
    environment = {key: value for key, value in os.environ.items() if key != "ANTHROPIC_MODEL"}
    environment.setdefault("SECRET_KEY", "test-only-secret-key")
    result = subprocess.run(
        [sys.executable, "-c", "import aihelper.settings as s; print(s.ANTHROPIC_MODEL)"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_default_model_is_known_to_the_sdk_and_not_deprecated():
    default = _code_default()
    known = {name for part in typing.get_args(Model) for name in typing.get_args(part)}
    assert default in known, f"{default} is not a model name the anthropic SDK knows"
    assert default not in DEPRECATED_MODELS, f"{default} reaches end of life on {DEPRECATED_MODELS[default]}"

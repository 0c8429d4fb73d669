import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from runbooks.embeddings import get_embedder
from runbooks.models import Runbook

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_creates_users_groups_and_runbooks(capsys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        call_command("seed_demo")
    first = capsys.readouterr().out
    assert "alice-demo-pass" in first and "bob-demo-pass" in first
    assert Runbook.objects.count() >= 25
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.check_password("admin-demo-pass")
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    assert set(alice.groups.values_list("name", flat=True)) != set(bob.groups.values_list("name", flat=True))
    assert Runbook.objects.filter(allowed_groups__name="dba").exists()
    assert Runbook.objects.filter(allowed_groups__isnull=True).count() > Runbook.objects.count() // 2
    assert all(step.get("title") for runbook in Runbook.objects.all() for step in runbook.steps)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("seed_demo")
    second = capsys.readouterr().out
    assert "0 created, 0 updated" in second
    assert callbacks == [], "nothing changed, so nothing is re-embedded"
    assert User.objects.filter(username__in=["admin", "alice", "bob"]).count() == 3


def test_seed_demo_keeps_a_changed_password(capsys):
    call_command("seed_demo")
    user = User.objects.get(username="alice")
    user.set_password("rotated-password")
    user.save()
    call_command("seed_demo")
    assert "exists, password unchanged" in capsys.readouterr().out
    assert User.objects.get(username="alice").check_password("rotated-password")


def test_seed_demo_embeds_long_runbooks_without_the_tokenizer_warning(capfd, django_capture_on_commit_callbacks):
    """Long documents are measured, then embedded in windows (runbooks/embeddings.py): the tokenizer's
    "sequence length is longer than the specified maximum" warning would be a false alarm."""
    tokenizer = getattr(get_embedder().model, "hf_tokenizer", None)  # PyTorch's (the ONNX runtime's never warns)
    if tokenizer is not None:
        tokenizer.deprecation_warnings.pop("sequence-length-is-longer-than-the-specified-maximum", None)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo")
    captured = capfd.readouterr()
    assert "Token indices sequence length" not in captured.out + captured.err
    assert not Runbook.objects.filter(embedding__isnull=True).exists()
    assert "Diagnosis" not in Runbook.objects.get(slug="demo/web-5xx-spike").body_markdown

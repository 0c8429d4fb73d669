import pytest
from django.core.exceptions import ValidationError

from runbooks.models import Runbook, validate_steps

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("restart it", "Steps must be a list"),
        ([{"title": "ok"}, "just text"], "Step 2 must be an object"),
        ([{"detail": "no title"}], "Step 1: 'title' is required."),
        ([{"title": "  "}], "Step 1: 'title' is required."),
        ([{"title": "ok", "command": ["ls"]}], "Step 1: 'command' must be text."),
        ([{"title": "ok", "shell": "ls"}], "Step 1 has unknown keys: shell"),
    ],
)
def test_malformed_steps_are_rejected_with_a_clear_message(steps, message):
    with pytest.raises(ValidationError) as excinfo:
        validate_steps(steps)
    assert any(message in text for text in excinfo.value.messages), excinfo.value.messages


def test_well_formed_steps_pass():
    validate_steps([{"title": "Check pods", "detail": "Look for restarts", "command": "kubectl get pods"}])


def test_full_clean_reports_steps_errors_on_the_steps_field():
    runbook = Runbook(slug="x/bad", name="Bad", steps=[{"detail": "missing"}])
    with pytest.raises(ValidationError) as excinfo:
        runbook.full_clean(exclude=["allowed_groups"])
    assert "steps" in excinfo.value.message_dict


def test_slug_must_be_lower_case_path():
    runbook = Runbook(slug="Has Spaces", name="Bad")
    with pytest.raises(ValidationError) as excinfo:
        runbook.full_clean(exclude=["allowed_groups"])
    assert "slug" in excinfo.value.message_dict


def test_search_vector_is_maintained_by_the_database_with_weights():
    runbook = Runbook.objects.create(
        slug="k8s/crash",
        name="KubePodCrashLooping",
        description="Pod restarts repeatedly",
        tags=["kubernetes"],
        steps=[{"title": "Inspect logs", "detail": "", "command": "kubectl logs"}],
    )
    runbook.refresh_from_db()
    vector = str(runbook.search_vector)
    assert "'crash':" in vector and "A" in vector.split("'crash':")[1].split(" ")[0]  # title, CamelCase split
    assert "'restart':" in vector and "B" in vector.split("'restart':")[1].split(" ")[0]  # description
    assert "'log':" in vector and "C" in vector.split("'log':")[1].split(" ")[0]  # steps
    Runbook.objects.filter(pk=runbook.pk).update(description="Disk is full")
    runbook.refresh_from_db()
    assert "'disk':" in str(runbook.search_vector)
    assert "'restart':" not in str(runbook.search_vector)

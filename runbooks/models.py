import re
import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxLengthValidator, RegexValidator, URLValidator
from django.db import models
from django.db.models import F, Func
from django.db.models.functions import Lower
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSIONS = 384
STEP_KEYS = ("title", "detail", "command")
STEP_MAX_CHARS = 4000

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._/-]*$",
    "Use lower-case letters, digits, '.', '_', '-' and '/' (for example 'kubernetes/kubepodcrashlooping').",
)


def validate_steps(value) -> None:
    """Steps are a list of {"title", "detail", "command"} objects of strings; title required."""
    if not isinstance(value, list):
        raise ValidationError("Steps must be a list of objects with title, detail and command.")
    errors = []
    for index, step in enumerate(value, start=1):
        if not isinstance(step, dict):
            errors.append(f"Step {index} must be an object with title, detail and command, not {type(step).__name__}.")
            continue
        unknown = sorted(set(step) - set(STEP_KEYS))
        if unknown:
            errors.append(f"Step {index} has unknown keys: {', '.join(unknown)} (allowed: {', '.join(STEP_KEYS)}).")
        for key in STEP_KEYS:
            if key in step and not isinstance(step[key], str):
                errors.append(f"Step {index}: '{key}' must be text.")
            elif key in step and len(step[key]) > STEP_MAX_CHARS:
                errors.append(f"Step {index}: '{key}' is longer than {STEP_MAX_CHARS} characters.")
        if not isinstance(step.get("title"), str) or not step.get("title", "").strip():
            errors.append(f"Step {index}: 'title' is required.")
    if errors:
        raise ValidationError(errors)


ALERT_NAME_PATTERN = r"[A-Za-z0-9_:.-]{1,200}"
alert_name_validator = RegexValidator(
    rf"^{ALERT_NAME_PATTERN}$",
    "An alert name is letters, digits, '_', ':', '.' and '-' (at most 200), e.g. KubePodCrashLooping.",
)


source_url_validator = URLValidator(
    schemes=["http", "https"], message="Give the address where the runbook is published: an http(s) URL."
)


# Characters that change how a name reads without being seen: controls, zero-width characters and the
# bidirectional overrides and isolates (U+202E makes "gnp.exe" display as "exe.png"). A runbook's name is what an
# engineer trusts in the middle of an incident; one that displays as another must not exist.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def visible_one_line(text: str) -> str:
    """``text`` on one line (runs of whitespace, newlines included, as one space) without the characters
    ``validate_visible_text`` refuses: a name made from what someone typed (a gap draft's question)."""
    return _INVISIBLE.sub("", " ".join(str(text or "").split()))


def validate_visible_text(value: str) -> None:
    found = _INVISIBLE.search(value or "")
    if found:
        raise ValidationError(
            f"Contains an invisible or direction-changing character (U+{ord(found.group()):04X}) at position "
            f"{found.start() + 1}: a name must read as it is displayed."
        )


# Limits every way in holds to (the editor and its front matter, the importers, the admin): runbook_upsert
# runs full_clean, so a value no form checked is refused here, by its field.
DESCRIPTION_MAX_CHARS = 4000
BODY_MAX_CHARS = 100_000
MAX_ALIASES = 50


def validate_aliases(value) -> None:
    if len(value or []) > MAX_ALIASES:
        raise ValidationError(f"A runbook answers at most {MAX_ALIASES} alert names.")
    for alias in value or []:
        alert_name_validator(alias)


# The runbook's title and aliases lower-cased, one array (SQL function of migration 0010, IMMUTABLE): what an
# alert's ``alertname`` is matched against, case-insensitively, through the GIN index below.
ALERT_NAMES = Func(
    F("name"), F("aliases"), function="runbook_alert_names", output_field=ArrayField(models.TextField())
)


class RunbookStatus(models.TextChoices):
    """Lifecycle: only ``active`` runbooks (that are also ``enabled``) are searched and recommended."""

    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class RunbookOrigin(models.TextChoices):
    ADMIN = "admin", "Written in the admin"
    DEMO = "demo", "Demo data"
    IMPORT = "import", "Imported"
    GAP_REPORT = "gap_report", "Drafted from the knowledge-gap report"


class Runbook(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=200, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200, validators=[validate_visible_text])
    # The front matter's human title ("Alertmanager Cluster Crashlooping"); ``name`` stays the alert name.
    display_title = models.CharField(max_length=200, blank=True, validators=[validate_visible_text])
    description = models.TextField(blank=True, validators=[MaxLengthValidator(DESCRIPTION_MAX_CHARS)])
    tags = ArrayField(models.CharField(max_length=64, validators=[validate_visible_text]), default=list, blank=True)
    steps = models.JSONField(default=list, blank=True, validators=[validate_steps])
    body_markdown = models.TextField(blank=True, validators=[MaxLengthValidator(BODY_MAX_CHARS)])
    # Front-matter keys with no column of their own (upstream's Hugo ``weight``, ``aliases``): kept so an
    # import loses nothing of the source; written by runbooks/importers.py, shown read-only in the admin.
    front_matter_extra = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # Where the runbook is published (upstream's page); an alert's ``runbook_url`` that points here links it.
    source_url = models.URLField(
        "source URL", max_length=500, blank=True, validators=[source_url_validator]
    )
    # Alert names this runbook answers besides its own name (``KubePodCrashLooping``), matched without case.
    aliases = ArrayField(
        models.CharField(max_length=200),
        default=list,
        blank=True,
        validators=[validate_aliases],
        verbose_name="alert names (aliases)",
    )
    service = models.CharField(max_length=100, blank=True, validators=[validate_visible_text])
    category = models.CharField(max_length=100, blank=True, validators=[validate_visible_text])
    is_automated = models.BooleanField(default=False)
    automation_ref = models.CharField(max_length=300, blank=True)
    # ``enabled`` is the operator's switch (off for a while, e.g. a runbook under review); ``status`` is the
    # lifecycle. Searched / recommended / catalogue = ``status == active`` AND ``enabled`` (docs/authoring.md).
    enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=RunbookStatus.choices, default=RunbookStatus.ACTIVE, db_index=True)
    origin = models.CharField(max_length=20, choices=RunbookOrigin.choices, default=RunbookOrigin.ADMIN)
    # The import source (a folder path, or the name given with ``import_runbooks --source``); "" otherwise.
    origin_source = models.CharField(max_length=300, blank=True)
    allowed_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="runbooks",
        help_text="Only members of these groups may see the runbook. None selected: everyone may.",
    )
    # Who owns the text: members of this group may edit it in the authoring view (runbooks/authoring.py)
    # and are named by the review-due flag; ``review_interval_days`` after ``reviewed_at`` it is due.
    owner_group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_runbooks"
    )
    review_interval_days = models.PositiveIntegerField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # Raised by every save that changes a versioned field; each value has its RunbookVersion row.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=200, blank=True, editable=False)
    embedding_hash = models.CharField(max_length=64, blank=True, editable=False)
    # Maintained by a database trigger (see migration 0002) so every write path keeps it current.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        db_table = "runbooks"
        ordering = ["name"]
        indexes = [
            HnswIndex(
                name="runbooks_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(name="runbooks_search_vector_gin", fields=["search_vector"], fastupdate=False),
            models.Index(name="runbooks_enabled_idx", fields=["enabled"]),
            models.Index(Lower("source_url"), name="runbooks_source_url_lower_idx"),
            GinIndex(ALERT_NAMES, name="runbooks_alert_names_gin", fastupdate=False),
        ]

    def __str__(self) -> str:
        return self.name


class RunbookVersion(models.Model):
    """What runbook ``runbook`` said at version ``number`` (runbooks/versions.py): append-only, one row
    per version, written by the service that changed the runbook in the same transaction."""

    runbook = models.ForeignKey("runbooks.Runbook", on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # {field: value} of runbooks.versions.VERSIONED_FIELDS as they were at this version.
    snapshot = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    changed_fields = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField()
    # Which write path saved it: admin, editor, import, sync, demo, gap_report, migration.
    source = models.CharField(max_length=20)

    class Meta:
        db_table = "runbook_versions"
        ordering = ["runbook", "-number"]
        constraints = [models.UniqueConstraint(fields=["runbook", "number"], name="runbook_version_unique")]

    SOURCE_LABELS = {
        "admin": "admin form",
        "editor": "runbook editor",
        "import": "import",
        "sync": "import --sync",
        "demo": "demo data",
        "gap_report": "knowledge-gap report",
        "migration": "recorded when versions started to be kept",
        "unrecorded": "saved before versions were kept",
    }

    def __str__(self) -> str:
        return f"{self.runbook_id} v{self.number}"

    @property
    def source_label(self) -> str:
        return self.SOURCE_LABELS.get(self.source, self.source)

    @property
    def changed_fields_text(self) -> str:
        return ", ".join(name.replace("_", " ") for name in self.changed_fields) or "–"


class ExecutionStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned"


class RunbookExecution(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    runbook = models.ForeignKey("runbooks.Runbook", on_delete=models.PROTECT, related_name="executions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runbook_executions")
    audit_log = models.ForeignKey(
        "audit.AuditLog", null=True, blank=True, on_delete=models.SET_NULL, related_name="executions"
    )
    session = models.ForeignKey(
        "aihelper.ChatSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="executions"
    )
    status = models.CharField(max_length=20, choices=ExecutionStatus.choices, default=ExecutionStatus.IN_PROGRESS)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"<step index>": {"done": bool, "done_at": iso8601}}
    step_progress = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    # Where the run was started from (chat_page, widget, ...), carried onto its outcome event.
    source = models.CharField(max_length=30, default="direct")

    class Meta:
        db_table = "runbook_executions"
        ordering = ["-started_at"]
        indexes = [
            models.Index(name="runbook_exec_runbook_status", fields=["runbook", "status"]),
            models.Index(name="runbook_exec_status_started", fields=["status", "started_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.runbook_id} {self.status}"

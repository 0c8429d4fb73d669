from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

# SearchConfig fields an experiment may override, with their allowed range (runbooks.search.SearchConfig).
OVERRIDABLE_FIELDS: dict[str, tuple[type, float, float]] = {
    "threshold": (float, 0.0, 1.0),
    "primary_gap": (float, 0.0, 1.0),
    "experimental_margin": (float, 0.0, 1.0),
    "max_recommended": (int, 1, 10),
}
key_validator = RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, '_' and '-'.")


def validate_variants(value) -> None:
    """Variants: a list of >= 2 {"key", "weight" > 0, "overrides": {SearchConfig field: value}}."""
    if not isinstance(value, list) or len(value) < 2:
        raise ValidationError('Give at least two variants: [{"key": "control", "weight": 1, "overrides": {}}, ...].')
    errors: list[str] = []
    seen: set[str] = set()
    for index, variant in enumerate(value, start=1):
        if not isinstance(variant, dict):
            errors.append(f"Variant {index} must be an object with key, weight and overrides.")
            continue
        unknown = sorted(set(variant) - {"key", "weight", "overrides"})
        if unknown:
            errors.append(f"Variant {index} has unknown keys: {', '.join(unknown)} (allowed: key, weight, overrides).")
        key = variant.get("key")
        if not isinstance(key, str) or not key_validator.regex.match(key) or len(key) > 100:
            errors.append(f"Variant {index}: 'key' must be lower-case letters, digits, '_' or '-' (at most 100).")
        elif key in seen:
            errors.append(f"Variant {index}: key '{key}' is used twice.")
        else:
            seen.add(key)
        weight = variant.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            errors.append(f"Variant {index}: 'weight' must be a positive number, not {weight!r}.")
        overrides = variant.get("overrides", {})
        if not isinstance(overrides, dict):
            errors.append(f"Variant {index}: 'overrides' must be an object.")
            continue
        for field, override in overrides.items():
            if field not in OVERRIDABLE_FIELDS:
                errors.append(
                    f"Variant {index}: '{field}' cannot be overridden "
                    f"(allowed: {', '.join(sorted(OVERRIDABLE_FIELDS))})."
                )
                continue
            kind, low, high = OVERRIDABLE_FIELDS[field]
            valid_type = isinstance(override, int) if kind is int else isinstance(override, int | float)
            if isinstance(override, bool) or not valid_type or not low <= override <= high:
                errors.append(f"Variant {index}: '{field}' must be {kind.__name__} between {low} and {high}.")
    if errors:
        raise ValidationError(errors)


class Experiment(models.Model):
    """An A/B test of retrieval settings; users are assigned by a hash of (key, user id)."""

    key = models.CharField(max_length=100, unique=True, validators=[key_validator])
    description = models.TextField(blank=True)
    variants = models.JSONField(
        default=list,
        encoder=DjangoJSONEncoder,
        validators=[validate_variants],
        help_text='[{"key": "control", "weight": 1, "overrides": {}}, '
        '{"key": "low-threshold", "weight": 1, "overrides": {"threshold": 0.4}}]. The first variant is the control.',
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: runs until stopped.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must be after the start."})
        if self.starts_at:
            # One experiment at a time: every answer belongs to at most one, so the analysis is clean.
            overlapping = Experiment.objects.exclude(pk=self.pk).filter(
                models.Q(ends_at__isnull=True) | models.Q(ends_at__gt=self.starts_at)
            )
            if self.ends_at:
                overlapping = overlapping.filter(starts_at__lt=self.ends_at)
            clash = overlapping.first()
            if clash:
                raise ValidationError(
                    f"The active window overlaps experiment '{clash.key}'; only one may run at a time."
                )


class RunbookStats(models.Model):
    """Learned feedback per runbook, recomputed from scratch by ``manage.py update_runbook_stats``."""

    runbook = models.OneToOneField("runbooks.Runbook", on_delete=models.CASCADE, primary_key=True, related_name="+")
    impressions = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    ctr = models.FloatField(null=True, help_text="Raw clicks / impressions (position-biased).")
    debiased_ctr = models.FloatField(null=True, help_text="Inverse-propensity weighted CTR (position-debiased).")
    rank1_impressions = models.PositiveIntegerField(default=0)
    rank1_clicks = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    smoothed_success = models.FloatField(default=0.5)
    feedback_score = models.FloatField(default=0.0, help_text="In [-1, 1]; 0 = no evidence either way.")
    last_interaction_at = models.DateTimeField(null=True)
    stale_reason = models.CharField(max_length=300, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name = "runbook stats"
        verbose_name_plural = "runbook stats"
        ordering = ["-impressions"]

    def __str__(self) -> str:
        return f"stats {self.runbook_id}"


class StatsRun(models.Model):
    """One row per update_runbook_stats run: what it saw, so a re-run without new data can skip."""

    computed_at = models.DateTimeField()
    max_event_timestamp = models.DateTimeField(null=True)
    event_count = models.BigIntegerField(default=0)
    execution_count = models.BigIntegerField(default=0)
    propensities = models.JSONField(default=dict)
    runbooks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"stats run {self.computed_at:%Y-%m-%d %H:%M}"


class LogFact(models.Model):
    """Rollup: one row per settled audit log (older than the 24 h click window), every runbook visible.

    Written only by analytics_facts_refresh (raw SQL in analytics/sql/facts.py); metrics read these for
    settled logs and compute newer ones live, so results are the same either way.
    """

    audit_log_id = models.UUIDField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=30)
    strategy = models.CharField(max_length=40)
    experiment = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    presented = models.PositiveSmallIntegerField()
    first_click_at = models.DateTimeField(null=True)
    first_click_rank = models.PositiveSmallIntegerField(null=True)
    clicked_runbooks = models.PositiveSmallIntegerField()

    class Meta:
        db_table = "analytics_log_facts"

    def __str__(self) -> str:
        return str(self.audit_log_id)


class PairFact(models.Model):
    """Rollup: one row per (settled audit log, presented runbook) with its funnel step times."""

    audit_log_id = models.UUIDField()
    runbook_id = models.UUIDField()
    created_at = models.DateTimeField()
    source = models.CharField(max_length=30)
    strategy = models.CharField(max_length=40)
    experiment = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    rank = models.PositiveSmallIntegerField(null=True)
    presented_at = models.DateTimeField()
    clicked_at = models.DateTimeField(null=True)
    viewed_at = models.DateTimeField(null=True)
    started_at = models.DateTimeField(null=True)
    succeeded_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "analytics_pair_facts"
        constraints = [models.UniqueConstraint(fields=["audit_log_id", "runbook_id"], name="pair_facts_unique")]
        indexes = [models.Index(name="pair_facts_created", fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.audit_log_id} {self.runbook_id}"


class FactsState(models.Model):
    """Single row: facts are complete for audit logs created before ``settled_before``."""

    settled_before = models.DateTimeField(null=True)
    refreshed_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"facts settled before {self.settled_before}"

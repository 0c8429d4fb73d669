"""Receivers are created here (the token is shown once, in the message after saving) and revoked with an
action, never deleted (their notifications point at them). What the webhooks stored is read-only."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from alerts.models import Alert, AlertGroup, AlertNotification, AlertReceiver
from alerts.receivers import alert_receiver_create, alert_receivers_revoke
from audit.admin import ReadOnlyAdmin


class AlertReceiverAddForm(forms.ModelForm):
    class Meta:
        model = AlertReceiver
        fields = ["name"]
        help_texts = {"name": "Who posts with this token, e.g. the Alertmanager receiver or Grafana contact point."}


@admin.register(AlertReceiver)
class AlertReceiverAdmin(admin.ModelAdmin):
    list_display = ["name", "token_prefix", "state", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "token_prefix"]
    readonly_fields = ["name", "token_prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke_selected"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = AlertReceiverAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["name"] if obj is None else self.readonly_fields

    @admin.display(description="state")
    def state(self, receiver: AlertReceiver) -> str:
        return "revoked" if receiver.revoked_at else "active"

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing is editable: a token is revoked (action), never changed
        created = alert_receiver_create(name=form.cleaned_data["name"], created_by=request.user)
        for field in ("pk", "name", "token_hash", "token_prefix", "created_at", "created_by_id"):
            setattr(obj, field, getattr(created.receiver, field))
        messages.warning(
            request,
            format_html(
                "The token of receiver “{}”, shown only this once: <code>{}</code> — configure it as the bearer "
                "token (Alertmanager http_config.authorization.credentials, Grafana's Authorization header).",
                created.receiver.name,
                created.token,
            ),
        )

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the tokens of the selected receivers")
    def revoke_selected(self, request, queryset):
        revoked = alert_receivers_revoke(receiver_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{revoked} receiver token(s) revoked; posts with them now get 401.")


@admin.register(AlertGroup)
class AlertGroupAdmin(ReadOnlyAdmin):
    list_display = ["group_key", "receiver", "format", "status", "first_seen", "last_seen"]
    list_filter = ["format", "status"]
    list_select_related = ["receiver"]


@admin.register(AlertNotification)
class AlertNotificationAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "receiver", "group", "status", "alert_count"]
    list_filter = ["status"]
    list_select_related = ["receiver", "group"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["alertname", "fingerprint", "status", "starts_at", "ends_at", "last_seen", "recommendation_state"]
    list_filter = ["status", "recommendation_state"]
    search_fields = ["alertname", "fingerprint"]

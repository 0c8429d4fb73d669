"""The alert webhooks, included by aihelper/urls.py under /api/alerts/ (docs/alerts.md, "Intake")."""

from django.urls import path

from alerts import webhook_views

app_name = "alerts_webhook"

urlpatterns = [
    path("alertmanager", webhook_views.alertmanager_webhook, name="alertmanager"),
    path("grafana", webhook_views.grafana_webhook, name="grafana"),
]

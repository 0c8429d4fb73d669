from django.urls import path

from runbooks import authoring, views

# Included by aihelper/urls.py under the "runbooks" namespace, next to the search page (which needs
# learned feedback from analytics, a layer above this app, so it lives in aihelper.chat).
urlpatterns = [
    path("<uuid:pk>/", views.detail, name="detail"),
    path("new/", authoring.runbook_new, name="new"),
    path("<uuid:pk>/edit/", authoring.runbook_edit, name="edit"),
    path("authoring/preview/", authoring.markdown_preview, name="authoring_preview"),
    path("<uuid:pk>/executions/", views.execution_start_view, name="execution_start"),
    path("executions/<uuid:pk>/", views.execution_detail, name="execution"),
    path("executions/<uuid:pk>/steps/<int:index>/", views.execution_step, name="execution_step"),
    path("executions/<uuid:pk>/finish/", views.execution_finish_view, name="execution_finish"),
]

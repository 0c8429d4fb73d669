from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from aihelper.chat import views as chat_views
from aihelper.ops.health import healthz, readyz
from runbooks import urls as runbook_urls

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path(
        "runbooks/",
        include(([path("", chat_views.runbook_search_page, name="search"), *runbook_urls.urlpatterns], "runbooks")),
    ),
    path("api/analytics/", include("analytics.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("aihelper.chat.urls")),
]

# JSON 404 under /api/ (what API clients parse), Django's page elsewhere.
handler404 = "aihelper.core.api_errors.not_found"

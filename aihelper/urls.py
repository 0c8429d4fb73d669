from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from aihelper.chat import views as chat_views
from aihelper.ops.health import healthz, readyz
from aihelper.ops.metrics import metrics
from runbooks import urls as runbook_urls


class FaviconRedirect(RedirectView):
    """Browsers ask for /favicon.ico before reading <link rel=icon>: send them to the one icon we have
    (resolved per request, so the hashed name of the manifest storage is used)."""

    permanent = False

    def get_redirect_url(self, *args, **kwargs):
        return static("favicon.svg")


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat", permanent=False)),
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path(
        "runbooks/",
        include(([path("", chat_views.runbook_search_page, name="search"), *runbook_urls.urlpatterns], "runbooks")),
    ),
    path("api/analytics/", include("analytics.urls")),
    path("api/alerts/", include("alerts.webhook_urls")),
    path("api/alerts/", include("alerts.api_urls")),
    path("alerts/", include("alerts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("aihelper.chat.urls")),
]

# JSON 404 under /api/ (what API clients parse), Django's page elsewhere.
handler404 = "aihelper.core.api_errors.not_found"
handler500 = "aihelper.core.api_errors.server_error"

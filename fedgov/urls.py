"""Top-level URLs: admin, the versioned API, the OpenAPI schema, Prometheus /metrics."""

from django.contrib import admin
from django.urls import include, path, register_converter
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from fedgov.converters import BoundedIdConverter
from fedgov.doc_pages import same_site_only
from fedgov.i18n import set_language
from fedgov.metrics import metrics_view
from fedgov.second_factor_views import SecondFactorLoginForm, enrol

# Ask a person with an authenticator for its code at sign-in (fedgov/second_factor.py).
admin.site.login_form = SecondFactorLoginForm
admin.site.site_header = _("fedgov administration")
admin.site.site_title = "fedgov"
admin.site.index_title = _("Records, runs and evidence")

# Registered before the includes below import their route modules.
register_converter(BoundedIdConverter, "id")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/setlang/", set_language, name="set_language"),
    path("account/two-factor/", enrol, name="two-factor"),
    path("api/v1/", include("fedgov.api_urls")),
    path("dashboard/", include("dashboard.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        same_site_only(SpectacularSwaggerView.as_view(url_name="schema")),
        name="api-docs",
    ),
    # Our template: the packaged one links Google Fonts.
    path(
        "api/redoc/",
        same_site_only(
            SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html")
        ),
        name="api-redoc",
    ),
    path("metrics", metrics_view, name="prometheus-django-metrics"),
]

"""Every app's API routes under /api/v1/."""

from django.urls import include, path

from fedgov.api_root import ApiRoot

urlpatterns = [
    # Before the includes: the sites router's own root lists only its six resources.
    path("", ApiRoot.as_view(), name="api-root"),
    path("", include("sites.urls")),
    path("", include("training.urls")),
    path("", include("audit.urls")),
    path("", include("reports.urls")),
]

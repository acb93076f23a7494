"""Every app's API routes under /api/v1/."""

from django.urls import include, path

urlpatterns = [
    path("", include("sites.urls")),
    path("", include("training.urls")),
    path("", include("audit.urls")),
    path("", include("audit.reports.urls")),
]

"""API routes of the training app; each area contributes its own routes."""

from training.api import flower_urls, gate_urls, rounds_urls, runs_urls

urlpatterns = [
    *runs_urls.urlpatterns,
    *gate_urls.urlpatterns,
    *rounds_urls.urlpatterns,
    *flower_urls.urlpatterns,
]

"""API routes for the gate area."""

from django.urls import path

from training.api.gate import RoundDecisionView, RoundGateView

# The round number is matched as text so that a malformed one gets a 400 naming
# ``round_no``, not a bare 404 from the URL resolver.
urlpatterns = [
    path("runs/<id:run_id>/rounds/<str:round_no>/gate", RoundGateView.as_view(), name="round-gate"),
    path(
        "runs/<id:run_id>/rounds/<str:round_no>/decision",
        RoundDecisionView.as_view(),
        name="round-decision",
    ),
]

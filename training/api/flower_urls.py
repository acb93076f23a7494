"""API routes for the flower area (tickets, exclusions, update records, SuperNodes)."""

from django.urls import path

from training.api import flower

urlpatterns = [
    path(
        "runs/<id:run_id>/rounds/<id:number>/ticket",
        flower.RoundTicketView.as_view(),
        name="flower-round-ticket",
    ),
    path(
        "runs/<id:run_id>/rounds/<id:number>/updates",
        flower.RoundUpdatesView.as_view(),
        name="flower-round-updates",
    ),
    path(
        "runs/<id:run_id>/rounds/<id:number>/evaluations",
        flower.RoundEvaluationsView.as_view(),
        name="flower-round-evaluations",
    ),
    path(
        "runs/<id:run_id>/rounds/<id:number>/close",
        flower.RoundCloseView.as_view(),
        name="flower-round-close",
    ),
    path(
        "runs/<id:run_id>/rounds/<id:number>/exclusions",
        flower.RoundExclusionsView.as_view(),
        name="flower-round-exclusions",
    ),
    path(
        "runs/<id:run_id>/rounds/<id:number>/allowed",
        flower.RoundAllowedView.as_view(),
        name="flower-round-allowed",
    ),
    path("sites/<slug:slug>/supernode", flower.SupernodeView.as_view(), name="flower-supernode"),
    path("flower/public-key", flower.PublicKeyView.as_view(), name="flower-public-key"),
]

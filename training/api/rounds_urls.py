"""API routes for round actions."""

from django.urls import path

from training.api.rounds import RoundAbortView, RoundApproveView, RoundRejectView

urlpatterns = [
    path(
        "runs/<id:run_id>/rounds/<id:number>/approve",
        RoundApproveView.as_view(),
        name="round-approve",
    ),
    path(
        "runs/<id:run_id>/rounds/<id:number>/reject",
        RoundRejectView.as_view(),
        name="round-reject",
    ),
    path(
        "runs/<id:run_id>/rounds/<id:number>/abort",
        RoundAbortView.as_view(),
        name="round-abort",
    ),
]

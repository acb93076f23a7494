"""API routes for round actions."""

from django.urls import path

from training.api.rounds import RoundAbortView, RoundApproveView, RoundRejectView

urlpatterns = [
    path(
        "runs/<int:run_id>/rounds/<int:number>/approve",
        RoundApproveView.as_view(),
        name="round-approve",
    ),
    path(
        "runs/<int:run_id>/rounds/<int:number>/reject",
        RoundRejectView.as_view(),
        name="round-reject",
    ),
    path(
        "runs/<int:run_id>/rounds/<int:number>/abort",
        RoundAbortView.as_view(),
        name="round-abort",
    ),
]

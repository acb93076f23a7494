"""API routes of the audit app: the read-only ledger, its retention and legal holds."""

from django.urls import path

from audit import api

urlpatterns = [
    path("ledger/entries", api.EntryList.as_view(), name="ledger-entries"),
    path(
        "ledger/checkpoints/latest", api.LatestCheckpoint.as_view(), name="ledger-checkpoint-latest"
    ),
    path("ledger/checkpoints/<int:size>", api.CheckpointAtSize.as_view(), name="ledger-checkpoint"),
    path("ledger/inclusion", api.InclusionProofView.as_view(), name="ledger-inclusion"),
    path("ledger/consistency", api.ConsistencyProofView.as_view(), name="ledger-consistency"),
    path("ledger/keys", api.PublicKeys.as_view(), name="ledger-keys"),
    path("ledger/retention", api.RetentionStatus.as_view(), name="ledger-retention"),
    path("ledger/holds", api.HoldList.as_view(), name="ledger-holds"),
    path("ledger/holds/<id:pk>", api.HoldDetail.as_view(), name="ledger-hold"),
    path("ledger/holds/<id:pk>/release", api.HoldRelease.as_view(), name="ledger-hold-release"),
]

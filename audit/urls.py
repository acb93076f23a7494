"""API routes of the audit app (read-only ledger)."""

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
]

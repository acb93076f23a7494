"""Admin shows ledger entries and checkpoints and refuses to add, change or delete them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from audit import keys
from audit.models import Checkpoint, LedgerEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("root", "root@example.invalid", "pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", ["ledgerentry", "checkpoint", "trustedkey"])
def test_evidence_pages_render_read_only(admin_client, append, checkpoint, name):
    append(3)
    checkpoint()
    listing = admin_client.get(f"/admin/audit/{name}/")
    assert listing.status_code == 200
    # 3 events + the key trusted on first use
    pk = {"ledgerentry": 0, "checkpoint": 4, "trustedkey": keys.active_key().key_id}[name]
    page = admin_client.get(f"/admin/audit/{name}/{pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.get(f"/admin/audit/{name}/add/").status_code == 403
    assert admin_client.get(f"/admin/audit/{name}/{pk}/delete/").status_code == 403


def test_admin_post_cannot_change_or_delete_evidence(admin_client, append, checkpoint):
    append(2)
    checkpoint()
    before = LedgerEntry.objects.get(seq=1).payload
    admin_client.post("/admin/audit/ledgerentry/1/change/", {"payload": "{}"})
    admin_client.post("/admin/audit/checkpoint/3/delete/", {"post": "yes"})
    bulk = admin_client.post(
        "/admin/audit/ledgerentry/", {"action": "delete_selected", "_selected_action": ["0", "1"]}
    )
    assert bulk.status_code in (200, 302, 403)
    assert LedgerEntry.objects.get(seq=1).payload == before
    assert LedgerEntry.objects.count() == 3  # 2 events + the key trusted on first use
    assert Checkpoint.objects.count() == 1

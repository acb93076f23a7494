"""Admin for ledger verifications: listed and viewable, never added, changed or deleted."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.urls import reverse

from dashboard.services import ledger_verification_run
from fedgov.actors import Actor


def test_verification_admin_lists_and_shows_but_refuses_writes(client, db):
    admin_user = User.objects.create_superuser("root", password="a-long-test-password")
    row = ledger_verification_run(actor=Actor.of(admin_user))
    client.force_login(admin_user)

    listing = client.get(reverse("admin:dashboard_ledgerverification_changelist"))
    detail = client.get(reverse("admin:dashboard_ledgerverification_change", args=[row.pk]))
    add = client.get(reverse("admin:dashboard_ledgerverification_add"))
    delete = client.post(reverse("admin:dashboard_ledgerverification_delete", args=[row.pk]))

    assert listing.status_code == 200 and b"root" in listing.content
    assert detail.status_code == 200
    assert add.status_code == 403
    assert delete.status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()

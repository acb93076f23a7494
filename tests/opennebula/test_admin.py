"""Workload admin: lists the evidence, refuses to add, change or delete it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from opennebula.choices import WorkloadState
from opennebula.models import Workload
from tests.factories import RunFactory, SiteFactory

pytestmark = pytest.mark.django_db


def test_workload_admin_lists_rows_and_refuses_edits(client):
    admin_user = User.objects.create_superuser("root", "root@example.org", "pw-for-tests-only")
    client.force_login(admin_user)
    site = SiteFactory()
    workload = Workload.objects.create(
        site=site,
        site_slug=site.slug,
        run=RunFactory(),
        zone_id=0,
        zone_endpoint="http://127.0.0.1:2633/RPC2",
        vm_id=4,
        state=WorkloadState.RUNNING,
        host="fra-kvm-01",
        host_country="DE",
        created_at=timezone.now(),
        updated_at=timezone.now(),
        actor_name="system:test",
    )
    listing = client.get("/admin/opennebula/workload/")
    assert listing.status_code == 200 and b"fra-kvm-01" in listing.content
    assert client.get("/admin/opennebula/workload/add/").status_code == 403
    detail = client.post(f"/admin/opennebula/workload/{workload.pk}/change/", {"host": "x"})
    assert detail.status_code in {200, 403}
    workload.refresh_from_db()
    assert workload.host == "fra-kvm-01"
    assert client.post(f"/admin/opennebula/workload/{workload.pk}/delete/").status_code == 403
    assert Workload.objects.filter(pk=workload.pk).exists()

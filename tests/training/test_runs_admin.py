"""Admin for runs, DPIAs and rounds: pages render, writes go through services."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse

from audit.models import LedgerEntry
from tests.factories import (
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RoundFactory,
    RunFactory,
    UserFactory,
    sha,
)
from training.choices import DpiaStatus
from training.models import Dpia, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def records():
    run = RunFactory()
    return {
        "trainingrun": run,
        "dpia": DpiaFactory(run=run, status=DpiaStatus.DRAFT, approved_at=None, valid_until=None),
        "round": RoundFactory(run=run, number=1),
    }


@pytest.mark.parametrize("model", ["trainingrun", "dpia", "round"])
def test_changelist_and_change_page_render(admin_client_, records, model):
    assert admin_client_.get(reverse(f"admin:training_{model}_changelist")).status_code == 200
    change = reverse(f"admin:training_{model}_change", args=[records[model].pk])
    assert admin_client_.get(change).status_code == 200


@pytest.mark.parametrize("model", ["trainingrun", "dpia"])
def test_add_page_renders(admin_client_, model):
    assert admin_client_.get(reverse(f"admin:training_{model}_add")).status_code == 200


def test_rounds_and_runs_are_read_only_in_admin(admin_client_, records):
    assert admin_client_.get(reverse("admin:training_round_add")).status_code == 403
    url = reverse("admin:training_trainingrun_change", args=[records["trainingrun"].pk])
    assert admin_client_.post(url, {"name": "renamed"}).status_code == 403
    assert TrainingRun.objects.get(pk=records["trainingrun"].pk).name != "renamed"


def test_run_added_in_admin_goes_through_run_create(admin_client_):
    purpose = PurposeFactory(code="topics")
    dataset = DatasetFactory(purposes=[purpose])
    policy = PolicyFactory()
    form = {
        "name": "admin-run",
        "purpose": purpose.pk,
        "datasets": [dataset.pk],
        "policy": policy.pk,
        "aggregator_country": "DE",
        "num_rounds": 2,
        "dp_mechanism": "none",
        "dp_clipping_norm": "",
        "dp_noise_multiplier": "",
        "dp_target_epsilon": "",
        "on_refusal": "skip",
    }
    response = admin_client_.post(reverse("admin:training_trainingrun_add"), form)
    assert response.status_code == 302, response.content[:3000]
    run = TrainingRun.objects.get(name="admin-run")
    assert run.requested_by_name == "root"
    assert list(run.datasets.all()) == [dataset]
    assert LedgerEntry.objects.filter(event_type="run.created").count() == 1


def test_dpia_recorded_and_approved_in_admin(admin_client_):
    run = RunFactory(requested_by=UserFactory(username="requester"))
    response = admin_client_.post(
        reverse("admin:training_dpia_add"),
        {"run": run.pk, "reference": "DPIA-A", "document_hash": sha("a")},
    )
    assert response.status_code == 302, response.content[:3000]
    dpia = Dpia.objects.get(run=run)
    admin_client_.post(
        reverse("admin:training_dpia_changelist"),
        {"action": "approve_dpias", "_selected_action": [dpia.pk]},
    )
    dpia.refresh_from_db()
    assert dpia.status == DpiaStatus.APPROVED
    assert dpia.approved_by_name == "root"
    change = reverse("admin:training_dpia_change", args=[dpia.pk])
    assert admin_client_.post(change, {"reference": "changed"}).status_code == 403


def test_an_expired_dpia_is_recorded_in_admin_with_its_date_and_flagged_late(admin_client_):
    dpia = Dpia.objects.create(
        run=RunFactory(requested_by=UserFactory(username="requester")),
        reference="DPIA-old",
        document_hash=sha("o"),
    )
    past = dt.date.today() - dt.timedelta(days=10)
    admin_client_.post(
        reverse("admin:training_dpia_changelist"),
        {"action": "approve_dpias", "_selected_action": [dpia.pk], "valid_until": str(past)},
    )
    dpia.refresh_from_db()
    assert (dpia.status, dpia.valid_until) == (DpiaStatus.APPROVED, past)
    entry = LedgerEntry.objects.filter(event_type="dpia.approved").get()
    assert json.loads(entry.payload)["recorded_late"] == ["valid_until"]
    assert entry.actor_repr == "root"


def test_bad_dpia_hash_in_admin_is_a_form_error(admin_client_):
    run = RunFactory()
    response = admin_client_.post(
        reverse("admin:training_dpia_add"),
        {"run": run.pk, "reference": "DPIA-B", "document_hash": "nothex"},
    )
    assert response.status_code == 200
    assert b"64 hexadecimal" in response.content
    assert not Dpia.objects.exists()

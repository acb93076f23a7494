"""Fixtures of the report tests: a run played through the real services, keys in tmp_path."""

from __future__ import annotations

import pytest
from django.utils import timezone

from fedgov.actors import Actor
from fedgov_flower.ticket import parse_unverified
from sites.models import ResidencyPolicy
from sites.services import consent_record_batch
from tests.factories import UserFactory, verified_actor
from tests.placement import place_on_host
from tests.training.flower.conftest import contract_digest, governed_scenario
from training.models import Round
from training.services.flower import UpdateReport, model_updates_record, round_ticket_issue
from training.services.gate import round_gate
from training.services.rounds import round_approve, round_route_after_gate


@pytest.fixture(autouse=True)
def report_dirs(settings, tmp_path):
    """Tests never write keys, certificates or reports into the repository's var/."""
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    settings.FEDGOV_REPORT_DIR = tmp_path / "reports"
    settings.FEDGOV_REPORT_CERT_FILE = ""
    settings.FEDGOV_REPORT_KEY_FILE = ""
    return settings.FEDGOV_REPORT_DIR


def play_round(run, number, *, operator, approver, accuracy):
    decision = round_gate(actor=operator, run=run, round_no=number)
    round_ = Round.objects.get(pk=decision.round_id)
    if decision.outcome != "allowed":
        return round_
    round_ = round_route_after_gate(actor=operator, round=round_)
    round_approve(actor=approver, round=round_, reason="gate evidence reviewed")
    round_ = place_on_host(Round.objects.get(pk=round_.pk), actor=operator)
    signed = parse_unverified(round_ticket_issue(actor=operator, round=round_).body)
    reports = [
        UpdateReport(
            node_id=site.flower_node_id,
            update_hash=f"{number:02d}{i:02d}".ljust(64, "a"),
            num_examples=100,
            records_used=elig.eligible_records,
            records_excluded=len(elig.excluded_pseudonyms),
            metrics={"accuracy": accuracy},
            filter_digest=contract_digest(signed, site.flower_node_id),
        )
        for i, (site, elig) in enumerate(
            (e.site, e)
            for e in decision.eligibilities.select_related("site").order_by("site__slug")
        )
        if elig.eligible
    ]
    model_updates_record(
        actor=Actor.system("flower"),
        round=round_,
        updates=reports,
        aggregate_hash=f"{number:02d}".ljust(64, "f"),
    )
    return round_


@pytest.fixture
def played_run(db):
    """Two rounds: the second after es-blogs withdrew two subjects and one consent expired.

    Returns ``(run, sites, datasets, operator_user, approver_user)``.
    """
    operator = UserFactory(username="olga", roles=["Operator"])
    approver = UserFactory(username="anton", roles=["Operator"])
    run, sites, datasets = governed_scenario(subjects=10, num_rounds=2)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(
        requires_approval=True, transfer_mechanisms={"pl-news": "scc"}
    )
    run.refresh_from_db()
    play_round(
        run, 1, operator=Actor.of(operator), approver=verified_actor(approver), accuracy=0.61
    )
    es = datasets[1]
    consent_record_batch(
        actor=Actor.system("es-blogs"),
        dataset=es,
        events=[
            {
                "subject_pseudonym": f"es-blogs-s000{n}",
                "purpose": run.purpose.code,
                "kind": "withdraw",
                "occurred_at": timezone.now(),
            }
            for n in (3, 7)
        ],
    )
    # An expiry is a fact the site reported earlier; write it straight onto the row.
    datasets[2].consents.filter(subject_pseudonym="pl-news-s0001").update(expires_at=timezone.now())
    play_round(
        run, 2, operator=Actor.of(operator), approver=verified_actor(approver), accuracy=0.74
    )
    return run, sites, datasets, operator, approver

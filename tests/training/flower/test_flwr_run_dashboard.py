"""A round a ServerApp under ``flwr run`` started waits for four-eyes approval: the
dashboard tells whoever signs in, links to the round's admin page, and stops once the
round is approved."""

from __future__ import annotations

import re

from django.test import Client
from django.urls import reverse

from fedgov import roles
from tests.factories import verified_actor
from tests.training.flower.conftest import governed_scenario
from training.choices import RoundState
from training.models import Round
from training.services.rounds import round_approve


def test_the_dashboard_shows_a_flwr_run_round_awaiting_approval_until_it_is_approved(
    api, make_user
):
    service = make_user(roles.SERVICE, username="flower-service")
    run, _, _ = governed_scenario()
    run.policy.requires_approval = True
    run.policy.save()
    # The ServerApp's first ticket request gates the round; it now waits for a person.
    url = f"/api/v1/runs/{run.pk}/rounds/1/ticket"
    waiting = api(service).post(url, {"flower_run_id": "3"}, format="json")
    assert waiting.json()["allowed"] is False
    round_ = Round.objects.get(run=run, number=1)
    assert round_.state == RoundState.AWAITING_APPROVAL

    dpo = Client()
    dpo.force_login(make_user(roles.DPO, username="dpo-on-duty"))
    page = dpo.get("/dashboard/").content.decode()
    notice = re.search(r'<div class="flash warn" role="alert" id="awaiting-approval">(.*?)</div>',
                       page, re.S)  # fmt: skip
    assert notice is not None, "no notice of the round awaiting approval"
    admin_url = reverse("admin:training_round_change", args=[round_.pk])
    assert f'href="{admin_url}"' in notice.group(1)
    assert f"{run.name} #1" in notice.group(1)
    assert round_.state_reason and round_.state_reason in notice.group(1)

    approver = make_user(roles.OPERATOR, username="second-operator")
    round_approve(actor=verified_actor(approver), round=round_, reason="gate table checked")
    assert Round.objects.get(pk=round_.pk).state != RoundState.AWAITING_APPROVAL
    page = dpo.get("/dashboard/").content.decode()
    assert 'id="awaiting-approval"' not in page

"""The report's differential-privacy section: mechanism, parameters, ε per round vs limit."""

from __future__ import annotations

import pytest

from fedgov.actors import Actor
from fedgov_flower.dp import AccountingSpec, privacy_spent
from fedgov_flower.ticket import parse_unverified
from reports.data import run_header
from sites.models import ResidencyPolicy
from tests.factories import UserFactory
from tests.placement import place_on_host
from tests.reports.test_pdf import build_pdf, pdf_text
from tests.training.flower.conftest import contract_digest, governed_scenario
from training.models import Round
from training.services.flower import UpdateReport, model_updates_record, round_ticket_issue
from training.services.gate import round_gate
from training.services.rounds import round_route_after_gate

Z, C, DELTA = 2.0, 1.0, 1e-5


def play_dp_round(run, number, *, refuse_node=None, noise=True):
    operator = Actor.of(UserFactory(username=f"op{number}", roles=["Operator"]))
    decision = round_gate(actor=operator, run=run, round_no=number)
    assert decision.outcome == "allowed"
    round_ = round_route_after_gate(actor=operator, round=Round.objects.get(pk=decision.round_id))
    round_ = place_on_host(round_, actor=operator)
    signed = parse_unverified(round_ticket_issue(actor=operator, round=round_).body)
    nodes = [e.site.flower_node_id for e in decision.eligibilities.select_related("site")]
    trained = [n for n in sorted(nodes) if n != refuse_node]
    aggregate = f"{number:02d}".ljust(64, "f")
    dp = {
        "mechanism": "central", "clipping_norm": C, "noise_multiplier": Z,
        "sampled_clients": len(trained), "total_clients": 3, "noise_std": Z * C / len(trained),
        "aggregate_hash_before_noise": f"{number:02d}".ljust(64, "e"), "aggregate_hash": aggregate,
    }  # fmt: skip
    model_updates_record(
        actor=Actor.system("flower"),
        round=round_,
        updates=[
            UpdateReport(n, f"{number:02d}{i:02d}".ljust(64, "a"), 10, 10, 0, {},
                         filter_digest=contract_digest(signed, n))
            for i, n in enumerate(trained)
        ],
        aggregate_hash=aggregate,
        dp=dp if noise else None,
        site_refusals=[{"node_id": refuse_node, "code": "site_epsilon_limit",
                        "reason": "planned cumulative ε=2.1 exceeds this site's limit 2"}]
        if refuse_node else None,
    )  # fmt: skip


@pytest.fixture
def dp_run(db):
    run, _sites, _ = governed_scenario(subjects=10, num_rounds=3)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(
        privacy_budget_epsilon=9.0, privacy_budget_delta=DELTA
    )
    run.dp_mechanism, run.dp_clipping_norm, run.dp_noise_multiplier = "central", C, Z
    run.save()
    run.refresh_from_db()
    play_dp_round(run, 1)
    play_dp_round(run, 2, refuse_node="1001")
    return run


def test_report_data_carries_mechanism_epsilon_per_round_and_refusals(dp_run):
    privacy = run_header(run_id=dp_run.pk).privacy
    spec = AccountingSpec(DELTA, 3)
    assert (privacy.mechanism, privacy.clipping_norm, privacy.noise_multiplier) == ("central", C, Z)
    assert (privacy.limit, privacy.delta, privacy.relation) == (9.0, DELTA, "add-or-remove-one")
    assert [r.epsilon for r in privacy.rounds] == [
        pytest.approx(privacy_spent(spec, [Z] * n).epsilon) for n in (1, 2)
    ]
    assert [(r.sampled_clients, r.total_clients) for r in privacy.rounds] == [(3, 3), (2, 3)]
    [refusal] = privacy.refusals
    assert (refusal.number, refusal.node_id, refusal.code) == (2, "1001", "site_epsilon_limit")


def test_report_data_never_shows_epsilon_for_a_round_without_noise(db):
    run, _sites, _ = governed_scenario(subjects=10, num_rounds=3)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(
        privacy_budget_epsilon=9.0, privacy_budget_delta=DELTA
    )
    run.dp_mechanism, run.dp_clipping_norm, run.dp_noise_multiplier = "central", C, Z
    run.save()
    play_dp_round(run, 1, noise=False)
    [record] = run_header(run_id=run.pk).privacy.rounds
    assert not record.private and record.epsilon is None and record.mechanism == "none"


def test_pdf_shows_the_privacy_section(dp_run, tmp_path):
    out = tmp_path / "report.pdf"
    build_pdf(dp_run, out)
    text = pdf_text(out)
    eps2 = privacy_spent(AccountingSpec(DELTA, 3), [Z] * 2).epsilon
    for needle in (
        "Differential privacy",
        "Noise multiplier z",
        "Cumulative ε per round against the budget",
        f"{eps2:.4f}",
        "add-or-remove-one",
        "site_epsilon_limit",
        "0.00001",  # δ as a reader writes it, not Python's "1e-05"
    ):
        assert needle in text, needle


def test_round_admin_and_dashboard_show_the_same_figures(dp_run, client):
    from django.test import Client

    from fedgov import roles
    from tests.training.test_round_admin import change_url, staff

    eps2 = privacy_spent(AccountingSpec(DELTA, 3), [Z] * 2).epsilon
    client.force_login(staff("bea", roles.OPERATOR))
    html = client.get(change_url(Round.objects.get(run=dp_run, number=2))).content.decode()
    assert "Differential privacy" in html and "Central DP, server-side clipping" in html
    assert f"ε={eps2:.4f}" in html and "2 of 3 sites" in html and "at δ=0.00001" in html

    dpo = Client()
    dpo.force_login(UserFactory(username="dora", roles=[roles.DPO]))
    page = dpo.get("/dashboard/").content.decode()
    assert f"central · ε {eps2:.3f} of 9 at δ=0.00001" in page

    # The same figures in the reader's language: the decimal comma in German and Polish.
    comma = f"{eps2:.3f}".replace(".", ",")
    for lang, label in (("de", "von 9 bei δ=0,00001"), ("pl", "z 9 przy δ=0,00001")):
        page = dpo.get("/dashboard/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
        assert f"central · ε {comma} {label}" in page, lang
        html = client.get(
            change_url(Round.objects.get(run=dp_run, number=2)), HTTP_ACCEPT_LANGUAGE=lang
        ).content.decode()
        assert f"ε={eps2:.4f}".replace(".", ",") in html and "δ=0,00001" in html, lang


def test_dashboard_says_unbounded_after_a_release_without_noise(db):
    from django.test import Client

    from fedgov import roles

    run, _sites, _ = governed_scenario(subjects=10, num_rounds=3)
    ResidencyPolicy.objects.filter(pk=run.policy_id).update(
        privacy_budget_epsilon=9.0, privacy_budget_delta=DELTA
    )
    run.dp_mechanism, run.dp_clipping_norm, run.dp_noise_multiplier = "central", C, Z
    run.save()
    play_dp_round(run, 1, noise=False)
    dpo = Client()
    dpo.force_login(UserFactory(username="dora", roles=[roles.DPO]))
    assert "ε unbounded: released without noise" in dpo.get("/dashboard/").content.decode()

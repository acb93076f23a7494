"""round_gate against the database: rows, round state, ledger event, withdrawal, replay."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import LedgerEntry
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov_flower.dp import AccountingSpec, privacy_spent
from sites.models import Consent
from tests.factories import (
    ConsentFactory,
    DatasetFactory,
    DpiaFactory,
    PolicyFactory,
    PurposeFactory,
    RoundFactory,
    RunFactory,
    SiteFactory,
)
from training.choices import RoundState
from training.gate import replay
from training.models import (
    GateDecision,
    GateResult,
    ModelUpdate,
    Round,
    RoundPrivacy,
    RoundTicket,
    SiteEligibility,
)
from training.services.gate import decision_snapshot, round_gate

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def federation(
    n_sites: int, *, subjects: int = 3, datasets_per_site: int = 1, prefix: str = "s", **policy
):
    """A run over ``n_sites`` EEA sites, each with consent-based datasets and subjects."""
    purpose = PurposeFactory()
    run = RunFactory(purpose=purpose, policy=PolicyFactory(**policy))
    DpiaFactory(run=run)
    for i in range(n_sites):
        site = SiteFactory(slug=f"{prefix}{i:03d}")
        for d in range(datasets_per_site):
            ds = DatasetFactory(site=site, name=f"ds{d}", purposes=[purpose])
            run.datasets.add(ds)
            for k in range(subjects):
                ConsentFactory(
                    dataset=ds, purpose=purpose, subject_pseudonym=f"{site.slug}-s{k:04d}"
                )
    return run


def withdraw(pseudonym: str, when=None) -> None:
    Consent.objects.filter(subject_pseudonym=pseudonym).update(
        withdrawn_at=when or timezone.now() - dt.timedelta(seconds=1)
    )


def test_gate_stores_results_eligibility_snapshot_and_moves_round_to_gated():
    run = federation(2)
    decision = round_gate(actor=ACTOR, run=run, round_no=1)

    round_ = Round.objects.get(run=run, number=1)
    assert round_.state == RoundState.GATED
    assert decision.outcome == "allowed"
    assert decision.snapshot_hash == hashlib.sha256(decision.snapshot.encode()).hexdigest()
    assert len(decision.eligible_sites) == 2
    # 12 site rules × 2 sites (criminal-data, Art. 10, is new), plus min-sites for the round.
    assert GateResult.objects.filter(decision=decision, site__isnull=False).count() == 24
    (round_rule,) = GateResult.objects.filter(decision=decision, site__isnull=True)
    assert round_rule.rule_id == "min-sites" and round_rule.ok
    eligibilities = SiteEligibility.objects.filter(decision=decision)
    assert [e.eligible_records for e in eligibilities] == [3, 3]
    assert all(e.excluded_pseudonyms == [] for e in eligibilities)


def test_gate_writes_gate_decided_ledger_event_without_pseudonyms():
    run = federation(2)
    withdraw("s000-s0001")
    decision = round_gate(actor=ACTOR, run=run, round_no=1)

    entry = LedgerEntry.objects.get(seq=decision.ledger_seq)
    assert entry.event_type == "gate.decided"
    assert (entry.subject_type, entry.subject_id) == ("round", str(decision.round_id))
    payload = json.loads(entry.payload)
    assert set(payload) == {
        "decision_id",
        "round_id",
        "run_id",
        "round_number",
        "outcome",
        "snapshot_hash",
        "policy_id",
        "policy_content_hash",
        "eligible_site_ids",
        "failed_rules",
        "round_failed_rules",
        "exclusion_digests",
        "allowed_digests",
    }
    assert payload["snapshot_hash"] == decision.snapshot_hash
    assert payload["outcome"] == "allowed"
    assert "s000-s0001" not in entry.payload
    assert "s000-s0001" not in decision.snapshot


def test_gate_excludes_subject_who_withdraws_after_round_one():
    run = federation(2, subjects=5)
    first = round_gate(actor=ACTOR, run=run, round_no=1)
    withdraw("s000-s0002")
    second = round_gate(actor=ACTOR, run=run, round_no=2)

    before = SiteEligibility.objects.get(decision=first, site__slug="s000")
    after = SiteEligibility.objects.get(decision=second, site__slug="s000")
    assert (before.eligible_records, after.eligible_records) == (5, 4)
    assert before.excluded_pseudonyms == []
    assert after.excluded_pseudonyms == ["s000-s0002"]
    assert after.exclusion_digest == hashlib.sha256(b"s000-s0002").hexdigest()
    assert after.exclusion_digest != before.exclusion_digest
    untouched = SiteEligibility.objects.get(decision=second, site__slug="s001")
    assert untouched.exclusion_digest == before.exclusion_digest == hashlib.sha256(b"").hexdigest()


def test_gate_excludes_expired_consent_and_ignores_future_withdrawal():
    run = federation(1, subjects=3)
    now = timezone.now()
    Consent.objects.filter(subject_pseudonym="s000-s0000").update(expires_at=now - dt.timedelta(1))
    Consent.objects.filter(subject_pseudonym="s000-s0001").update(
        withdrawn_at=now + dt.timedelta(days=1)
    )
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    elig = SiteEligibility.objects.get(decision=decision)
    assert elig.eligible_records == 2
    assert elig.excluded_pseudonyms == ["s000-s0000"]


def test_excluded_pseudonyms_keep_every_character():
    run = federation(1, subjects=0)
    dataset = run.datasets.get()
    odd = ['a,b"c', "line\nbreak", "ümlaut", "[x]"]
    for name in odd:
        ConsentFactory(
            dataset=dataset,
            purpose=run.purpose,
            subject_pseudonym=name,
            withdrawn_at=timezone.now() - dt.timedelta(seconds=1),
        )
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    elig = SiteEligibility.objects.get(decision=decision)
    assert elig.excluded_pseudonyms == sorted(odd)
    assert elig.exclusion_digest == hashlib.sha256("\n".join(sorted(odd)).encode()).hexdigest()


def test_gate_does_not_count_consent_granted_after_the_round_instant():
    run = federation(1, subjects=3)
    Consent.objects.filter(subject_pseudonym="s000-s0002").update(
        granted_at=timezone.now() + dt.timedelta(hours=1)
    )
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    elig = SiteEligibility.objects.get(decision=decision)
    assert (elig.eligible_records, elig.excluded_pseudonyms) == (2, [])


def test_gate_blocks_round_when_every_subject_of_a_site_withdraws():
    run = federation(2, subjects=2, min_eligible_sites=2)
    for k in range(2):
        withdraw(f"s001-s{k:04d}")
    decision = round_gate(actor=ACTOR, run=run, round_no=1)

    assert decision.outcome == "blocked"
    round_ = Round.objects.get(pk=decision.round_id)
    assert round_.state == RoundState.BLOCKED
    assert "min-sites" in round_.state_reason
    assert decision.eligible_sites == []
    failed = set(
        GateResult.objects.filter(decision=decision, site__slug="s001", ok=False).values_list(
            "rule_id", flat=True
        )
    )
    # Every subject withdrew: the dataset itself counts as withdrawn (Art. 7(3)).
    assert failed == {"lawful-basis", "consent", "min-records"}


def test_replay_of_stored_snapshot_reproduces_the_stored_verdict():
    run = federation(3, subjects=4, min_eligible_sites=2)
    withdraw("s002-s0003")
    site = run.datasets.get(site__slug="s001").site
    site.compute_country = "US"
    site.save()
    decision = round_gate(actor=ACTOR, run=run, round_no=1)

    verdict = replay(decision_snapshot(decision))
    assert verdict.outcome == decision.outcome
    assert verdict.reason == decision.reason
    assert list(verdict.eligible_site_ids) == decision.eligible_sites
    stored = [
        (r.site_id, r.rule_id, r.article, r.ok, r.reason)
        for r in GateResult.objects.filter(decision=decision).order_by("pk")
    ]
    replayed = [
        (s.site_id, r.rule_id, r.article, r.ok, r.reason) for s in verdict.sites for r in s.results
    ] + [(None, r.rule_id, r.article, r.ok, r.reason) for r in verdict.round_results]
    assert replayed == stored
    eligibilities = {
        e.site_id: (e.eligible, e.eligible_records, e.exclusion_digest)
        for e in SiteEligibility.objects.filter(decision=decision)
    }
    assert eligibilities == {
        s.site_id: (s.eligible, s.eligible_records, s.exclusion_digest) for s in verdict.sites
    }


def test_replay_notices_a_tampered_snapshot():
    run = federation(1)
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    data = decision_snapshot(decision)
    data["sites"][0]["compute_country"] = "US"
    assert replay(data).outcome == "blocked"
    with pytest.raises(ValueError, match="schema"):
        replay({**data, "schema": 99})


def test_gate_refuses_a_round_that_is_not_planned():
    run = federation(1)
    round_gate(actor=ACTOR, run=run, round_no=1)
    with pytest.raises(TransitionNotAllowed, match="only a planned round"):
        round_gate(actor=ACTOR, run=run, round_no=1)
    assert GateDecision.objects.count() == 1


@pytest.mark.parametrize("bad", [0, -1, 4, "1", 1.0, True])
def test_gate_refuses_a_bad_round_number_and_writes_nothing(bad):
    run = federation(1)
    with pytest.raises(InvalidInput) as exc:
        round_gate(actor=ACTOR, run=run, round_no=bad)
    assert "round_no" in exc.value.errors
    assert not Round.objects.exists() and not LedgerEntry.objects.exists()


def test_gate_uses_an_existing_planned_round():
    run = federation(1)
    existing = RoundFactory(run=run, number=2)
    decision = round_gate(actor=ACTOR, run=run, round_no=2)
    assert decision.round_id == existing.pk


def dp_run(budget: float, **policy):
    run = federation(1, privacy_budget_epsilon=budget, privacy_budget_delta=1e-5, **policy)
    run.dp_mechanism, run.dp_clipping_norm, run.dp_noise_multiplier = "central", 1.0, 2.0
    run.num_rounds = 5
    run.save()
    return run


def released(run, number: int, *, private=True, z=2.0, epsilon=1.0):
    round_ = RoundFactory(run=run, number=number, state=RoundState.CLOSED)
    RoundPrivacy.objects.create(
        round=round_,
        private=private,
        mechanism="central" if private else "none",
        noise_multiplier=z if private else None,
        sampled_clients=1,
        total_clients=1,
        epsilon=epsilon if private else None,
        recorded_at=timezone.now(),
    )
    return round_


def test_privacy_budget_is_flowers_accountant_over_recorded_releases():
    spec = AccountingSpec(delta=1e-5, population_size=1)
    two, three = (privacy_spent(spec, [2.0] * n).epsilon for n in (2, 3))
    run = dp_run(budget=(two + three) / 2)
    released(run, 1)
    # A round that passed the gate but released nothing spends nothing: only releases count.
    RoundFactory(run=run, number=2, state=RoundState.FAILED)
    decision = round_gate(actor=ACTOR, run=run, round_no=3)
    assert decision.outcome == "allowed"
    ok = GateResult.objects.get(decision=decision, rule_id="privacy-budget")
    assert f"= {two:.4g} of {(two + three) / 2:g} at δ=1e-05" in ok.reason

    released(run, 4)
    decision = round_gate(actor=ACTOR, run=run, round_no=5)
    assert decision.outcome == "blocked"
    failed = GateResult.objects.get(decision=decision, rule_id="privacy-budget")
    assert not failed.ok and f"spent ε={two:.4g}" in failed.reason
    assert f"= {three:.4g} of" in failed.reason and "δ=1e-05" in failed.reason


def test_a_release_without_noise_makes_the_budget_unbounded():
    run = dp_run(budget=1000.0)
    released(run, 1, private=False)
    decision = round_gate(actor=ACTOR, run=run, round_no=2)
    assert decision.outcome == "blocked"
    failed = GateResult.objects.get(decision=decision, rule_id="privacy-budget")
    assert "round 1 released an aggregate without noise" in failed.reason


def test_an_aggregate_recorded_without_privacy_record_counts_as_released_without_noise():
    run = dp_run(budget=1000.0)
    round_ = RoundFactory(run=run, number=1, state=RoundState.CLOSED)
    RoundTicket.objects.create(
        round=round_, body='{"dp": null}', signature="s", key_id="k",
        issued_at=timezone.now(), expires_at=timezone.now(),
    )  # fmt: skip
    ModelUpdate.objects.create(
        round=round_, kind="aggregate", update_hash="a" * 64, num_examples=1,
        recorded_at=timezone.now(),
    )  # fmt: skip
    decision = round_gate(actor=ACTOR, run=run, round_no=2)
    failed = GateResult.objects.get(decision=decision, rule_id="privacy-budget")
    assert not failed.ok and "without noise" in failed.reason


def test_a_budget_without_a_mechanism_blocks_whatever_is_declared():
    run = federation(1, privacy_budget_epsilon=1000.0, privacy_budget_delta=1e-5)
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    failed = GateResult.objects.get(decision=decision, rule_id="privacy-budget")
    assert not failed.ok and "no ε can be claimed" in failed.reason


def test_the_policy_can_require_a_mechanism():
    run = dp_run(budget=1000.0, dp_required_mechanism="local")
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    failed = GateResult.objects.get(decision=decision, rule_id="privacy-budget")
    assert not failed.ok and "requires local DP; the run applies central" in failed.reason


def _gate_queries(n_sites: int, prefix: str) -> int:
    run = federation(n_sites, subjects=2, datasets_per_site=2, prefix=prefix)
    withdraw(f"{prefix}{n_sites - 1:03d}-s0001")
    with CaptureQueriesContext(connection) as captured:
        round_gate(actor=ACTOR, run=run, round_no=1)
    # Ledger appends cost O(log n) in the ledger's size (its subtree hashes), whatever
    # the federation; the gate's own statements are what must not grow.
    return sum(1 for q in captured.captured_queries if "audit_" not in q["sql"])


def test_gate_query_count_does_not_grow_with_sites():
    small = _gate_queries(2, "a")
    large = _gate_queries(12, "b")
    assert small == large
    # 19 reads for the gate's facts (issue 12) plus the privacy history the accountant
    # replays (issue 17), plus the consent-state cache's read and, the first time (or
    # after a consent write), its store; what matters is that the count is flat in the
    # number of sites.
    assert small <= 23


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_racing_gates_of_one_round_yield_one_decision():
    import threading

    from django.db import connection as default_connection

    run = federation(2)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def gate() -> None:
        try:
            barrier.wait()
            round_gate(actor=ACTOR, run=run, round_no=1)
            outcomes.append("decided")
        except TransitionNotAllowed:
            outcomes.append("refused")
        finally:
            default_connection.close()

    threads = [threading.Thread(target=gate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["decided", "refused"]
    assert GateDecision.objects.filter(round__run=run).count() == 1
    assert LedgerEntry.objects.filter(event_type="gate.decided").count() == 1

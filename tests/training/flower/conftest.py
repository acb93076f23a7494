"""Fixtures for the Flower tests: a gated, approved round with three registered sites."""

from __future__ import annotations

import pytest
from django.utils import timezone

from fedgov_flower.ticket import exclusion_digest
from tests.factories import RoundFactory, SiteFactory, sha
from tests.placement import local_host  # noqa: F401 - fixture used by name
from training.choices import GateOutcome, RoundState
from training.models import GateDecision, SiteEligibility

SLUGS = ("de-legal", "es-blogs", "pl-news")


@pytest.fixture(autouse=True)
def flower_up_here(local_host):  # noqa: F811 - the fixture imported above
    """The sites' SuperNodes run on this host, in Germany, as ``flower up`` records."""
    local_host(SLUGS)


@pytest.fixture(autouse=True)
def key_dir(settings, tmp_path):
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    return settings.FEDGOV_KEY_DIR


def gate_round(round_, sites, *, excluded=None, outcome=GateOutcome.ALLOWED, eligible=None):
    """Write the gate's evidence by hand, as ``round_gate`` would leave it."""
    excluded = excluded or {}
    decision = GateDecision.objects.create(
        round=round_,
        evaluated_at=timezone.now(),
        outcome=outcome,
        snapshot="{}",
        snapshot_hash=sha(f"snapshot-{round_.pk}-{timezone.now()}"),
        eligible_sites=[s.pk for s in sites],
        actor_name="test",
    )
    for site in sites:
        names = sorted(excluded.get(site.slug, []))
        SiteEligibility.objects.create(
            decision=decision,
            site=site,
            eligible=eligible is None or site.slug in eligible,
            eligible_records=max(0, 120 - len(names)),
            excluded_pseudonyms=names,
            exclusion_digest=exclusion_digest(names),
        )
    return decision


@pytest.fixture
def three_sites(db):
    return [SiteFactory(slug=slug, flower_node_id=str(1000 + i)) for i, slug in enumerate(SLUGS)]


@pytest.fixture
def approved_round(three_sites):
    # Gated, approved and placed: the state in which a ticket may be signed.
    round_ = RoundFactory(number=1, state=RoundState.PLACEMENT_VERIFIED)
    gate_round(round_, three_sites, excluded={"es-blogs": ["es-blogs-s0007", "es-blogs-s0003"]})
    return round_


def governed_scenario(*, subjects: int = 10, num_rounds: int = 3, on_refusal: str = "skip"):
    """A run the real gate allows: three consent-based sites, approved DPIA, no approval.

    Returns ``(run, sites, datasets)``; each site's subjects are ``<slug>-s0001`` onwards.
    """
    from sites.models import Consent
    from tests.factories import (
        DatasetFactory,
        DpiaFactory,
        PolicyFactory,
        PurposeFactory,
        RunFactory,
    )

    purpose = PurposeFactory()
    policy = PolicyFactory(requires_approval=False, min_eligible_sites=1)
    sites, datasets = [], []
    for i, slug in enumerate(SLUGS):
        site = SiteFactory(slug=slug, country="DE", flower_node_id=str(1000 + i))
        dataset = DatasetFactory(site=site, name=f"{slug}-corpus", purposes=[purpose])
        Consent.objects.bulk_create(
            Consent(
                dataset=dataset,
                purpose=purpose,
                subject_pseudonym=f"{slug}-s{n:04d}",
                granted_at=timezone.now() - timezone.timedelta(days=30),
            )
            for n in range(1, subjects + 1)
        )
        sites.append(site)
        datasets.append(dataset)
    run = RunFactory(
        purpose=purpose,
        policy=policy,
        datasets=datasets,
        num_rounds=num_rounds,
        on_refusal=on_refusal,
    )
    DpiaFactory(run=run)
    return run, sites, datasets


def kept(run, number: int, node_id: str, *, used: int = 9, excluded: int = 0) -> dict:
    """The data-contract fields of an honest site's reply: counts and the digest of the
    subject list the round's train ticket gave that site."""
    from fedgov_flower.ticket import parse_unverified
    from training.services.flower import latest_ticket

    round_ = run.rounds.get(number=number)
    named = parse_unverified(latest_ticket(round_).body).site_by_node(node_id)
    digest = (named.allowed_digest or named.exclusion_digest) if named else ""
    return {"records_used": used, "records_excluded": excluded, "filter_digest": digest}


def contract_digest(ticket, node_id: str) -> str:
    """The subject-list digest an honest site reports for ``node_id`` under ``ticket``."""
    named = ticket.site_by_node(node_id)
    return (named.allowed_digest or named.exclusion_digest) if named else ""

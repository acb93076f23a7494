"""The issue-2 demo end to end, and the scenario file's parser and loader."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from sites.models import Consent, ConsentEvent
from training.choices import RoundState
from training.models import Round, SiteEligibility, TrainingRun
from training.scenario import ALL, ScenarioError, parse_scenario

SCENARIO = Path(settings.BASE_DIR) / "scenarios" / "virt8ra.toml"
TODAY = dt.date(2026, 6, 15)


def run_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("demo", "--gate-only", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_blocks_the_us_site_and_drops_records_after_withdrawal():
    output = run_demo()

    assert "nl-media · residency (Art. 44 + policy): compute in US is outside" in output
    # nl-media's zone is run by an uncertified US processor: the DPF decision does not
    # cover it (Art. 45, C(2023) 4745), and no SCC is recorded (Art. 46).
    assert "nl-media · transfer (Art. 44-49): site data to the zone operator" in output
    assert "→ Atlantic Cloud Hosting Inc. (US, processor): transfer" in output
    assert "no DPF listing of Atlantic Cloud Hosting Inc. is recorded" in output
    # Round 2: five es-blogs subjects and three pl-news subjects withdrew.
    assert "115 (was 120)" in output and "117 (was 120)" in output
    # Round 3: the whole pl-news dataset withdrew.
    assert "0 (was 117)" in output
    assert "pl-news · consent (Art. 7)" in output
    assert len(re.findall(r"Snapshot SHA-256: [0-9a-f]{64}", output)) == 3
    assert re.search(r"Ledger: \d+ events", output)

    run = TrainingRun.objects.get(name="virt8ra")
    assert run.dpia.approved_by_name == "demo-dpo-approver"
    assert run.requested_by_name == "demo-operator"
    states = list(Round.objects.filter(run=run).values_list("number", "state"))
    assert states == [(1, RoundState.GATED), (2, RoundState.GATED), (3, RoundState.GATED)]
    es = SiteEligibility.objects.get(
        decision__round__run=run, decision__round__number=2, site__slug="es-blogs"
    )
    assert es.excluded_pseudonyms == [
        "es-blogs-s0007",
        "es-blogs-s0019",
        "es-blogs-s0042",
        "es-blogs-s0077",
        "es-blogs-s0101",
    ]
    nl = SiteEligibility.objects.get(
        decision__round__run=run, decision__round__number=1, site__slug="nl-media"
    )
    assert not nl.eligible
    # Withdrawal is an event, never a delete.
    assert Consent.objects.filter(dataset__site__slug="pl-news").count() == 120
    assert ConsentEvent.objects.filter(kind="withdraw").count() == 5 + 3 + 117


@pytest.mark.django_db
def test_demo_runs_again_on_the_same_database_with_a_new_run():
    run_demo()
    output = run_demo()

    assert "run virt8ra-2 created" in output
    assert "reused from an earlier load" in output
    run = TrainingRun.objects.get(name="virt8ra-2")
    first = SiteEligibility.objects.get(
        decision__round__run=run, decision__round__number=1, site__slug="pl-news"
    )
    assert first.eligible_records == 120  # consent was re-collected for the new run
    assert "0 (was 117)" in output


@pytest.mark.django_db
def test_demo_refuses_a_bad_scenario_naming_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SCENARIO.read_text().replace('country = "PL"', 'country = "XX"', 1))
    with pytest.raises(CommandError, match=r"sites\[2\]\.country: 'XX' is not an ISO 3166"):
        run_demo("--scenario", str(bad))
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_demo_refuses_a_missing_scenario_file(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run_demo("--scenario", str(tmp_path / "nope.toml"))


def test_virt8ra_scenario_describes_four_sites_and_three_rounds():
    scenario = parse_scenario(SCENARIO, today=TODAY)
    assert [s.slug for s in scenario.sites] == ["de-legal", "es-blogs", "pl-news", "nl-media"]
    nl = scenario.site("nl-media")
    assert nl.compute_country == "US" and nl.zone.hosts[0].country == "US"
    assert scenario.policy.fields["min_eligible_sites"] == 2
    assert scenario.policy.fields["transfer_mechanisms"] == {}
    assert scenario.pseudonyms("de-legal")[:2] == ["de-legal-s0001", "de-legal-s0002"]
    assert len(scenario.pseudonyms("de-legal")) == 120
    assert scenario.rounds[2].withdrawals[0].subjects == ALL
    assert scenario.site("de-legal").agreement_valid_until == TODAY + dt.timedelta(days=730)


def _mutate(old: str, new: str) -> str:
    text = SCENARIO.read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('aggregator_country = "DE"', 'aggregator_country = "Germany"', "run.aggregator_country"),
        ("min_eligible_sites = 2", "min_eligible_sites = true", "policy.min_eligible_sites"),
        ('allowed_areas = ["EEA"]', 'allowed_areas = ["Atlantis"]', "policy.allowed_areas"),
        ('compute_country = "US"', 'compute_country = "Holland"', "sites[3].compute_country"),
        ('lawful_basis = "6(1)(a)"', 'lawful_basis = "consent"', "sites[0].dataset.lawful_basis"),
        ('name = "virt8ra"\n', 'name = "virt8ra"\ncolour = "red"\n', "colour"),
        ('"es-blogs-s0007"', '"es-blogs-s0999"', "rounds[1].withdraw[0].subjects"),
        ('subjects = "all"', 'subjects = "most"', "rounds[2].withdraw[0].subjects"),
        ("number = 3", "number = 4", "rounds[2].number"),
        ('purpose = "topic-classification"', 'purpose = "ads"', "run.purpose"),
        ("subjects_per_site = 120", "", "consent.subjects_per_site"),
        # The transfer register and the Art. 10 ground (issue 12) name their keys too.
        (
            'country = "PL", role = "processor" }',
            'country = "PL", role = "owner" }',
            "sites[2].zone_operator.role",
        ),
        (
            "transfer_safeguards = []",
            'transfer_safeguards = [{ exporter = "xx", importer = "Y", mechanism = "scc" }]',
            "policy.transfer_safeguards[0].exporter",
        ),
        (
            'art10_basis = "member_state_law"',
            'art10_basis = "tradition"',
            "sites[0].dataset.art10_basis",
        ),
        (
            "number = 3\n",
            'number = 3\nwithdraw_dataset = [{ site = "fr-x", reason = "r" }]\n',
            "rounds[2].withdraw_dataset[0].site",
        ),
    ],
)
def test_bad_scenario_is_refused_naming_the_key(old, new, key):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(_mutate(old, new), today=TODAY)
    assert exc.value.key == key


def test_scenario_that_is_not_toml_is_refused():
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse_scenario("name = ", today=TODAY)


@pytest.mark.django_db
def test_scenario_expresses_a_whole_dataset_withdrawal_and_the_gate_refuses_it(tmp_path):
    """Round 2 withdraws es-blogs' whole dataset: es-blogs is refused from round 2 on."""
    path = tmp_path / "withdraw.toml"
    path.write_text(
        _mutate(
            "number = 2\n",
            'number = 2\nwithdraw_dataset = [{ site = "es-blogs", reason = "the site leaves" }]\n',
        )
    )
    scenario = parse_scenario(path, today=TODAY)
    assert scenario.rounds[1].dataset_withdrawals == (("es-blogs", "the site leaves"),)
    output = run_demo("--scenario", str(path))
    assert "es-blogs · lawful-basis (Art. 6(1)): blog-posts: withdrawn from federation" in output
    run = TrainingRun.objects.get(name="virt8ra")
    es = SiteEligibility.objects.filter(decision__round__run=run, site__slug="es-blogs")
    eligible = dict(es.values_list("decision__round__number", "eligible"))
    assert eligible[1] is True and eligible[2] is False and eligible[3] is False


@pytest.mark.django_db
def test_scenario_expresses_a_zone_host_outside_the_declared_country_and_placement_refuses_it(
    tmp_path,
):
    """nl-media declares compute in NL and runs its own zone, whose only host is in the US:
    the gate reads the declaration and passes residency; the placement check reads the host
    the VM lands on and refuses it (Art. 28(3)(a), 44)."""
    from opennebula.placement import placement_violations
    from training.ports import Placement
    from training.services.orchestrate import _placement_countries

    text = _mutate('compute_country = "US"', 'compute_country = "NL"')
    text = text.replace(
        'zone_operator = { organisation = "Atlantic Cloud Hosting Inc.", country = "US", '
        'role = "processor" }',
        'zone_operator = { organisation = "Mediahuis Noord B.V.", country = "NL", '
        'role = "joint_controller" }',
    )
    path = tmp_path / "host.toml"
    path.write_text(text)
    nl = parse_scenario(path, today=TODAY).site("nl-media")
    assert (nl.compute_country, nl.zone.hosts[0].country) == ("NL", "US")
    run_demo("--scenario", str(path))
    run = TrainingRun.objects.get(name="virt8ra")
    first = SiteEligibility.objects.get(
        decision__round__run=run, decision__round__number=1, site__slug="nl-media"
    )
    assert first.eligible is True  # the declaration passes the gate
    allowed = frozenset(_placement_countries(run, run.policy.allowed_areas)[first.site_id])
    landed = Placement(104, 1, "iad-kvm-11", "US", "default", "US", "system", "US")
    assert "NL" in allowed and "US" not in allowed
    assert placement_violations(landed, allowed) == [
        "host iad-kvm-11 is in US, outside the allowed countries",
        "cluster default is in US, outside the allowed countries",
        "datastore system is in US, outside the allowed countries",
    ]

"""federate runs each site on the zone configured for it: stand-in only where the scenario
says ``standin = true``, otherwise the site's own OpenNebula binding (issue 15)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError

from tests.factories import SiteFactory
from training.management.commands.federate import external_bindings, standin_data
from training.scenario import ScenarioError, parse_scenario

SCENARIO = Path(settings.BASE_DIR) / "scenarios" / "virt8ra.toml"
TODAY = dt.date(2026, 1, 15)
DE_ZONE = 'zone = { id = 101, standin = true, endpoint = "http://127.0.0.1:2633/RPC2",'


def scenario_with_real_de(extra: str = "") -> str:
    text = SCENARIO.read_text()
    assert DE_ZONE in text
    return text.replace(
        DE_ZONE,
        'zone = { id = 0, endpoint = "https://one.uni-leipzig.example:2633/RPC2", '
        f'credentials = "env:ONE_LEIPZIG", template_id = 7{extra},',
        1,
    )


def test_the_demo_scenario_serves_every_zone_from_the_stand_in(tmp_path):
    scenario = parse_scenario(SCENARIO, today=TODAY)
    assert all(site.zone.standin for site in scenario.sites)
    assert len(standin_data(scenario, tmp_path)["zones"]) == 4


def test_a_real_zone_is_parsed_and_left_out_of_the_stand_in(tmp_path):
    scenario = parse_scenario(scenario_with_real_de(), today=TODAY)
    de = scenario.site("de-legal").zone
    assert (de.standin, de.id, de.credentials, de.template_id) == (
        False,
        0,
        "env:ONE_LEIPZIG",
        7,
    )
    zone_ids = [z["id"] for z in standin_data(scenario, tmp_path)["zones"]]
    assert zone_ids == [102, 103, 104]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('credentials = "env:ONE_LEIPZIG"', 'credentials = "oneadmin:hunter2"'),
        ("template_id = 7", "template_id = -5"),
    ],
)
def test_a_bad_zone_binding_is_refused_naming_the_key_never_the_secret(old, new):
    text = scenario_with_real_de().replace(old, new, 1)
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, today=TODAY)
    assert exc.value.key.startswith("sites[0].zone.")
    assert "hunter2" not in str(exc.value)


@pytest.mark.django_db
def test_external_sites_keep_their_database_binding_and_must_have_one():
    scenario = parse_scenario(scenario_with_real_de(), today=TODAY)
    slugs = [s.slug for s in scenario.sites]
    sites = {slug: SiteFactory(slug=slug) for slug in slugs}
    sites["de-legal"].one_zone_endpoint = "https://ONE.uni-leipzig.example/RPC2"
    sites["de-legal"].one_credentials_ref = "env:ONE_LEIPZIG"
    sites["de-legal"].one_zone_id = 0
    assert external_bindings(scenario, sites) == {
        "de-legal": "zone 0 at https://one.uni-leipzig.example:443/RPC2"
    }
    sites["de-legal"].one_credentials_ref = ""
    with pytest.raises(CommandError, match="de-legal has no one_credentials_ref"):
        external_bindings(scenario, sites)

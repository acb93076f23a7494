"""``federate --app``: the scenario's app run config and per-site node config, with
fedgov's own keys kept out of the app's namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from opennebula.standin.driver import supernode_command
from training.management.commands.federate import node_config_text
from training.scenario import ScenarioError, parse_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "virt8ra.toml"


def with_app(extra_top: str, site_extra: str = "") -> str:
    text = SCENARIO.read_text()
    if site_extra:
        # The first site's table gets the node config.
        marker = "[[sites]]"
        head, _, tail = text.partition(marker)
        first, sep, rest = tail.partition("\n[")
        text = head + marker + first + "\n" + site_extra + sep + rest
    return text + "\n" + extra_top


def test_the_scenario_gives_the_apps_run_config_and_each_sites_node_config():
    spec = parse_scenario(
        with_app(
            "[app.run_config]\nnum-server-rounds = 1\nlr = 0.05\n",
            "[sites.node_config]\npartition-id = 0\nnum-partitions = 3\n",
        )
    )
    assert spec.app_run_config == {"num-server-rounds": 1, "lr": 0.05}
    assert spec.sites[0].node_config == {"partition-id": 0, "num-partitions": 3}
    assert spec.sites[1].node_config == {}
    assert node_config_text(spec.sites[0].node_config) == "num-partitions=3 partition-id=0"


@pytest.mark.parametrize(
    ("top", "site"),
    [
        ('[app.run_config]\n"fedgov.run-id" = 3\n', ""),
        ("", "[sites.node_config]\nfedgov-site-id = 9\n"),
        ("[app.run_config]\nnested = [1, 2]\n", ""),
    ],
)
def test_fedgovs_own_keys_and_nested_values_are_refused(top, site):
    with pytest.raises(ScenarioError):
        parse_scenario(with_app(top, site))


def test_the_standin_supernode_gets_the_apps_node_config_after_fedgovs():
    command = supernode_command(
        {
            "ONEAPP_FL_SUPERLINK_ADDRESS": "127.0.0.1:9092",
            "FEDGOV_SITE_ID": "4",
            "FEDGOV_NODE_CONFIG": "partition-id=2",
        },
        9100,
    )
    config = command[command.index("--node-config") + 1]
    assert config == "site-id='4' fedgov-site-id=\"4\" partition-id=2"

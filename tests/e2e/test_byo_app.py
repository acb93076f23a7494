"""A user's own Flower app (FedProx, federated evaluation on) run by ``federate --app`` on
real SuperLink and SuperNode processes: evaluate carries its own tickets, the allow-list
is applied at the sites, the round closes and the ledger verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.e2e.own_database import own_database
from tests.e2e.test_federate import wait_for_no_processes

pytestmark = [pytest.mark.e2e]

REPO = Path(settings.BASE_DIR)
APP = REPO / "tests" / "e2e" / "byo_app"
DATA = REPO / "training" / "flower" / "data"

FACTS = """
import json
from audit.models import LedgerEntry
from fedgov_flower.ticket import parse_unverified
from training.models import Round, RoundTicket
events = lambda t: [json.loads(e.payload) for e in LedgerEntry.objects.filter(event_type=t)]
tickets = [(t.round.number, t.message_type, parse_unverified(t.body))
           for t in RoundTicket.objects.select_related("round")]
print(json.dumps({
    "states": {r.number: [r.state, r.state_reason] for r in Round.objects.all()},
    "ticket_types": sorted((n, kind) for n, kind, _ in tickets),
    "flower_runs": sorted({(n, t.flower_run_id) for n, _, t in tickets}),
    "allowed": {f"{n}:{s.node_id}": s.allowed_digest
                for n, kind, t in tickets if kind == "train" for s in t.sites},
    "updates": events("update.recorded"),
    "evaluations": events("evaluation.recorded"),
    "refused": events("updates.refused"),
    "privacy": events("privacy.accounted"),
    "vendor": __import__("django.db").db.connection.vendor,
}))
"""


def test_a_users_fedprox_app_trains_and_evaluates_under_tickets(tmp_path):
    scenario = (REPO / "scenarios" / "virt8ra.toml").read_text()
    # Each site's records come from the demo corpus; the app reads them by node config.
    for slug in ("de-legal", "es-blogs", "pl-news", "nl-media"):
        marker = f'slug = "{slug}"\n'
        scenario = scenario.replace(
            marker, marker + f'node_config = {{ data-file = "{DATA / slug}.jsonl" }}\n'
        )
    # The scenario plans central DP: governed() applies it with Flower's server-side
    # wrapper; ε is accounted from the releases it reports.
    assert 'dp_mechanism = "central"' in scenario
    scenario += "\n[app.run_config]\nnum-server-rounds = 1\n"
    path = tmp_path / "byo.toml"
    path.write_text(scenario)
    with own_database(tmp_path, "byo") as database_url:
        env = {**os.environ, "FEDGOV_VAR_DIR": str(tmp_path / "var"),
               "DJANGO_SETTINGS_MODULE": "fedgov.settings",
               "DATABASE_URL": database_url}  # fmt: skip
        # federate drives the rounds in-process; no worker shares the database.
        env.pop("CELERY_BROKER_URL", None)
        run_and_check(env, path, tmp_path)


def run_and_check(env: dict, path: Path, tmp_path: Path) -> None:
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=300)
    run = subprocess.run(
        [*manage, "federate", "--scenario", str(path), "--app", str(APP), "--rounds", "2",
         "--ports", "18860-18889"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert wait_for_no_processes(tmp_path / "var") == []

    shell = subprocess.run(
        [*manage, "shell", "-c", FACTS], env=env, capture_output=True, text=True, timeout=120
    )
    assert shell.returncode == 0, shell.stderr
    facts = json.loads(shell.stdout.strip().splitlines()[-1])
    assert facts["vendor"] == ("postgresql" if "postgres" in env["DATABASE_URL"] else "sqlite")
    states = {number: state for number, (state, _) in facts["states"].items()}
    assert states == {"1": "closed", "2": "closed"}, facts["states"]
    # Each round: one train and one evaluate ticket, bound to that round's Flower run.
    assert facts["ticket_types"] == [[1, "evaluate"], [1, "train"], [2, "evaluate"], [2, "train"]]
    runs = dict(facts["flower_runs"])
    assert len(facts["flower_runs"]) == 2 and runs[1] != runs[2]
    assert facts["refused"] == []
    for update in facts["updates"]:
        # Each site filtered by exactly its allow-list of that round...
        key = f"{update['round_number']}:{update['node_id']}"
        assert update["filter_digest"] == facts["allowed"][key], key
        assert update["records_used"] > 0
    # ...and the subjects who withdrew before round 2 were left out of it.
    assert any(u["records_excluded"] > 0 for u in facts["updates"] if u["round_number"] == 2)
    assert not any(u["records_excluded"] for u in facts["updates"] if u["round_number"] == 1)
    # Federated evaluation ran under its own tickets, at the sites that trained.
    trained = {(u["round_number"], u["node_id"]) for u in facts["updates"]}
    assert {(e["round_number"], e["node_id"]) for e in facts["evaluations"]} == trained

    # Each round's release was accounted: central noise, added (hash before ≠ after),
    # and a cumulative ε that grows with the releases.
    privacy = sorted(facts["privacy"], key=lambda p: p["round_number"])
    assert [p["round_number"] for p in privacy] == [1, 2]
    for p in privacy:
        assert p["private"] and p["mechanism"] == "central", p
        assert p["aggregate_hash_before_noise"] not in (None, p["aggregate_hash"])
    assert 0 < privacy[0]["epsilon"] < privacy[1]["epsilon"] <= privacy[1]["epsilon_limit"]

    verify = subprocess.run(
        [*manage, "ledger_verify", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

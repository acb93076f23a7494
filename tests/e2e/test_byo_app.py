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

from tests.e2e.test_federate import wait_for_no_processes

pytestmark = [pytest.mark.e2e]

REPO = Path(settings.BASE_DIR)
APP = REPO / "tests" / "e2e" / "byo_app"
DATA = REPO / "training" / "flower" / "data"

FACTS = """
import json
from audit.models import LedgerEntry
from training.flower.ticket import parse_unverified
from training.models import Round, RoundTicket
events = lambda t: [json.loads(e.payload) for e in LedgerEntry.objects.filter(event_type=t)]
tickets = {t.message_type: parse_unverified(t.body) for t in RoundTicket.objects.all()}
print(json.dumps({
    "state": Round.objects.get(number=1).state,
    "ticket_types": sorted(t.message_type for t in RoundTicket.objects.all()),
    "flower_runs": sorted({t.flower_run_id for t in tickets.values()}),
    "allowed": {s.node_id: s.allowed_digest for s in tickets["train"].sites},
    "allowed_counts": {s.node_id: s.allowed_count for s in tickets["train"].sites},
    "updates": events("update.recorded"),
    "evaluations": events("evaluation.recorded"),
    "refused": events("updates.refused"),
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
    scenario += "\n[app.run_config]\nnum-server-rounds = 1\n"
    path = tmp_path / "byo.toml"
    path.write_text(scenario)
    env = {**os.environ, "FEDGOV_VAR_DIR": str(tmp_path / "var"),
           "DJANGO_SETTINGS_MODULE": "fedgov.settings"}  # fmt: skip
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=300)
    run = subprocess.run(
        [*manage, "federate", "--scenario", str(path), "--app", str(APP), "--rounds", "1",
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
    assert facts["state"] == "closed"
    assert facts["ticket_types"] == ["evaluate", "train"]
    assert len(facts["flower_runs"]) == 1 and facts["flower_runs"][0]
    assert facts["refused"] == []
    assert facts["updates"] and facts["evaluations"]
    for update in facts["updates"]:
        node = update["node_id"]
        # The site filtered by exactly the ticket's allow-list...
        assert update["filter_digest"] == facts["allowed"][node]
        # ...and used no more records than its allowed subjects could hold.
        assert update["records_used"] > 0
    assert {e["node_id"] for e in facts["evaluations"]} == {u["node_id"] for u in facts["updates"]}

    verify = subprocess.run(
        [*manage, "ledger_verify", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

"""Shared harness of the Flower benchmarks: a live fedgov, a supervised federation, a run.

A benchmark calls ``setup_django(var_dir)`` first (its own SQLite under ``var_dir``),
then ``FedgovServer`` serves the real API from a thread while real ``flower-superlink``
and ``flower-supernode`` processes train the demo task.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SITES = ("de-legal", "es-blogs", "pl-news")


def setup_django(var_dir: Path) -> None:
    """Django on a private SQLite file and key directory under ``var_dir``."""
    var_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FEDGOV_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"
    os.environ["FEDGOV_KEY_DIR"] = str(var_dir / "keys")
    # The benches' SuperNodes run on this host: say where it is, and record them as
    # ``flower up`` does, so the ticket endpoint verifies their placement (issue 16).
    os.environ["FEDGOV_LOCAL_HOST_COUNTRY"] = "DE"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fedgov.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from tests.placement import declare_in

    declare_in(var_dir, SITES, country="DE")


@dataclass
class Scenario:
    run_ids: list[int]
    service_token: str
    site_tokens: dict[str, str]
    site_ids: dict[str, int]
    public_key_b64: str


def make_scenario(*, runs: int, rounds: int) -> Scenario:
    """Three consent-based sites (subjects s0001..s0120) and ``runs`` runs the gate allows."""
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from audit.keys import active_key, raw_public_bytes
    from fedgov import roles
    from sites.models import SiteSteward
    from tests.factories import DpiaFactory, RunFactory, UserFactory
    from tests.training.flower.conftest import governed_scenario

    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    first, sites, datasets = governed_scenario(subjects=120, num_rounds=rounds)
    run_ids = [first.pk]
    for _ in range(runs - 1):
        run = RunFactory(
            purpose=first.purpose, policy=first.policy, datasets=datasets, num_rounds=rounds
        )
        DpiaFactory(run=run)
        run_ids.append(run.pk)
    for site in sites:
        site.flower_node_id = ""
        site.save()
    service = UserFactory(username="bench-service", roles=[roles.SERVICE])
    site_tokens = {}
    for site in sites:
        steward = UserFactory(username=f"bench-{site.slug}", roles=[roles.SITE_STEWARD])
        SiteSteward.objects.create(user=steward, site=site)
        site_tokens[site.slug] = Token.objects.create(user=steward).key
    return Scenario(
        run_ids=run_ids,
        service_token=Token.objects.create(user=service).key,
        site_tokens=site_tokens,
        site_ids={s.slug: s.pk for s in sites},
        public_key_b64=base64.b64encode(raw_public_bytes(active_key().public_key)).decode(),
    )


class FedgovServer:
    """fedgov's WSGI app on a thread (the same server class Django's live tests use)."""

    def __init__(self, port: int) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, *args) -> None:
                pass

        self.server = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler)
        self.server.set_app(WSGIHandler())
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FedgovServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_federation(
    *,
    state_dir: Path,
    base_port: int,
    scenario: Scenario,
    api_url: str,
    run_id: int,
    rounds: int,
    mode: str = "governed",
    extra_env: dict[str, str] | None = None,
    local_epochs: int = 10,
    timeout: float = 900.0,
) -> dict:
    """Start a federation, run the app once, stop every process; return its summary."""
    from training.flower.supervisor import (
        SiteNode,
        Supervisor,
        federation_specs,
        flwr_run,
        wait_for_port,
        write_flwr_home,
    )

    supervisor = Supervisor(state_dir / "flower")
    nodes = [SiteNode(scenario.site_ids[s], s, base_port + 1 + i) for i, s in enumerate(SITES)]
    evidence = state_dir / "evidence"
    try:
        for spec in federation_specs(
            base_port=base_port,
            sites=nodes,
            public_key_b64=scenario.public_key_b64,
            api_url=api_url,
            site_tokens=scenario.site_tokens,
            service_token=scenario.service_token,
            cache_dir=state_dir / "site-cache",
            extra_env={"FEDGOV_BENCH_UNGOVERNED": "1", **(extra_env or {})},
        ):
            supervisor.start(spec)
        wait_for_port(base_port)
        flwr_run(
            home=write_flwr_home(state_dir / "flwr-home", name="bench", port=base_port),
            connection="bench",
            run_config={
                "fedgov-api": api_url,
                "fedgov-run-id": run_id,
                "num-server-rounds": rounds,
                "local-epochs": local_epochs,
                "expected-nodes": len(nodes),
                "evidence-dir": str(evidence),
                "mode": mode,
            },
        )
        deadline = time.monotonic() + timeout
        while not (evidence / "summary.json").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"run did not finish; logs in {supervisor.log_dir}")
            time.sleep(0.5)
        summary = json.loads((evidence / "summary.json").read_text())
    finally:
        supervisor.stop_all()
    require_trained(summary)
    return summary


def require_trained(summary: dict) -> None:
    """Stop the bench unless every governed round took every site's update.

    A refused or half-refused round is fast, so timing it reports a ratio of refusals
    that looks like a result (bench/dp_overhead.py did, once tickets named their Flower
    run and its own did not)."""
    problems = list(summary.get("failure") or [])
    for round_no, info in sorted(summary["rounds"].items()):
        if info["refusal"]:
            problems.append(f"round {round_no} refused: {info['refusal']}")
        elif info["ticket_nodes"] and (
            info["rejected"] or len(info["accepted"]) != len(info["ticket_nodes"])
        ):
            problems.append(
                f"round {round_no}: {len(info['accepted'])} of {len(info['ticket_nodes'])} "
                f"updates accepted, {len(info['rejected'])} rejected, errors {info['errors']}"
            )
    if problems:
        raise SystemExit("not a measurement, a round did not train: " + "; ".join(problems))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")

"""End to end: real flower-superlink and flower-supernode processes governed by a live fedgov.

Three sites, three rounds. Before round 2 ten es-blogs subjects withdraw consent, so
round 2's es-blogs update reports fewer records. Before round 3 pl-news withdraws its
whole dataset: its SuperNode is unregistered (ledger) and it is absent from round 3.
Every update hash fedgov recorded equals the hash recomputed here from the arrays the
ServerApp received.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from audit.keys import active_key, raw_public_bytes
from audit.models import LedgerEntry
from fedgov import roles
from fedgov.actors import Actor
from fedgov_flower.update_hash import update_hash
from sites.models import SiteSteward
from sites.services import consent_record_batch, dataset_withdraw
from tests.factories import UserFactory
from tests.placement import declare_in
from tests.training.flower.conftest import SLUGS, governed_scenario
from training.flower.supervisor import (
    SiteNode,
    Supervisor,
    _descendants,
    federation_specs,
    flwr_run,
    free_port_block,
    tuned_env,
    wait_for_port,
    write_flwr_home,
)
from training.models import ModelUpdate
from training.services import flower as flower_services

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WITHDRAWN = [f"es-blogs-s{n:04d}" for n in range(1, 11)]


@pytest.fixture
def federation(tmp_path, settings):
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""
    # The SuperNodes run on this host, stated to be in Germany, as flower up records it.
    settings.VAR_DIR = tmp_path
    settings.FEDGOV_LOCAL_HOST_COUNTRY = "DE"
    declare_in(tmp_path, SLUGS)
    supervisor = Supervisor(tmp_path / "flower")
    yield supervisor
    pids = [supervisor.pid(n) for n in supervisor.names()]
    family = set().union(*(_descendants(p) for p in pids if p))
    supervisor.stop_all(grace=5)
    # No stray process survives: neither the supervised leaders nor anything they spawned.
    time.sleep(0.5)
    survivors = {p for p in family | set(filter(None, pids)) if Path(f"/proc/{p}").exists()}
    survivors = {p for p in survivors if "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]}
    assert not survivors, f"processes survived: {survivors}"


def _token(user) -> str:
    return Token.objects.create(user=user).key


def test_two_governed_rounds_with_real_flower_processes(
    federation, live_server, tmp_path, monkeypatch
):
    run, sites, datasets = governed_scenario(subjects=120, num_rounds=3)
    for site in sites:
        site.flower_node_id = ""  # the ServerApp binds the real node ids
        site.save()
    service_token = _token(UserFactory(username="flower-service", roles=[roles.SERVICE]))
    site_tokens = {}
    for site in sites:
        steward = UserFactory(username=f"steward-{site.slug}", roles=[roles.SITE_STEWARD])
        SiteSteward.objects.create(user=steward, site=site)
        site_tokens[site.slug] = _token(steward)

    # Before round 2 ten es-blogs subjects withdraw consent; before round 3 pl-news
    # withdraws its dataset. The hook runs in the live server at the start of each ticket
    # request (one per round), before fedgov reconciles SuperNodes and gates the round,
    # so the order is certain without any timing.
    original_reconcile = flower_services.supernodes_reconcile
    requests_seen = []

    def reconcile_after_site_changes(*, actor, run, superlink=None):
        requests_seen.append(run.pk)
        if len(requests_seen) == 2:
            consent_record_batch(
                actor=Actor.system("e2e-site"),
                dataset=datasets[1],
                events=[
                    {"subject_pseudonym": s, "purpose": run.purpose.code, "kind": "withdraw",
                     "occurred_at": timezone.now().isoformat()}
                    for s in WITHDRAWN
                ],
            )  # fmt: skip
        if len(requests_seen) == 3:
            dataset_withdraw(actor=Actor.system("e2e-site"), dataset=datasets[2], reason="leaves")
        return original_reconcile(actor=actor, run=run, superlink=superlink)

    monkeypatch.setattr(flower_services, "supernodes_reconcile", reconcile_after_site_changes)

    base_port = free_port_block(4, first=18520, last=18529)
    public_key = base64.b64encode(raw_public_bytes(active_key().public_key)).decode()
    nodes = [SiteNode(s.pk, s.slug, base_port + 1 + i) for i, s in enumerate(sites)]
    for spec in federation_specs(
        base_port=base_port,
        sites=nodes,
        public_key_b64=public_key,
        api_url=live_server.url,
        site_tokens=site_tokens,
        service_token=service_token,
        cache_dir=tmp_path / "site-cache",
        extra_env=tuned_env(),
    ):
        federation.start(spec)
    wait_for_port(base_port)
    evidence = tmp_path / "evidence"
    flwr_run(
        home=write_flwr_home(tmp_path / "flwr-home", name="fedgov", port=base_port),
        connection="fedgov",
        run_config={
            "fedgov-api": live_server.url,
            "fedgov-run-id": run.pk,
            "num-server-rounds": 3,
            "local-epochs": 10,
            "expected-nodes": 3,
            "evidence-dir": str(evidence),
        },
    )
    # Waiting for the run to finish is not a timing assertion: the limit only stops a hang.
    deadline = time.monotonic() + 600
    while not (evidence / "summary.json").exists():
        assert time.monotonic() < deadline, "the Flower run did not finish"
        time.sleep(1)

    summary = json.loads((evidence / "summary.json").read_text())
    assert summary["failure"] == []
    updates = ModelUpdate.objects.filter(round__run=run, kind="site", accepted=True)
    by_round = {
        n: {u.site.slug: u for u in updates.filter(round__number=n).select_related("site")}
        for n in (1, 2, 3)
    }
    assert sorted(by_round[1]) == sorted(by_round[2]) == ["de-legal", "es-blogs", "pl-news"]
    assert sorted(by_round[3]) == ["de-legal", "es-blogs"]
    unregistered = LedgerEntry.objects.filter(event_type="supernode.unregistered")
    assert [json.loads(e.payload)["site_id"] for e in unregistered] == [sites[2].pk]
    assert by_round[1]["es-blogs"].records_used == 360
    assert by_round[2]["es-blogs"].records_used == 330
    assert by_round[2]["es-blogs"].records_excluded == 30
    assert by_round[2]["de-legal"].records_used == 360

    for n in (1, 2, 3):
        for update in by_round[n].values():
            with np.load(evidence / f"round{n}-node{update.node_id}.npz") as arrays:
                assert update.update_hash == update_hash(dict(arrays))
        aggregate = ModelUpdate.objects.get(round__run=run, round__number=n, kind="aggregate")
        assert aggregate.update_hash == summary["rounds"][str(n)]["aggregate_hash"]
    assert not ModelUpdate.objects.filter(round__run=run, accepted=False).exists()
    assert summary["accuracy"]["3"] > summary["accuracy"]["0"]

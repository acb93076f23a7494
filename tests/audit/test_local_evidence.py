"""The demo's witnesses and TSA: separate processes, one witness per site, pinned once; a
witness that is down is reported and blocks nothing."""

from __future__ import annotations

import pytest

from audit import local, timestamping, trust, witnessing
from audit.choices import KeyRole
from fedgov.actors import Actor

pytestmark = pytest.mark.django_db


def test_one_witness_process_per_site_and_a_tsa_cosign_and_date_a_checkpoint(
    append, checkpoint, tmp_path, settings
):
    overridden = {}
    actor = Actor.system("tests")
    sites = ["de-legal", "es-blogs", "pl-news"]
    with local.running(
        tmp_path, sites, actor=actor, override=lambda n, v: overridden.__setitem__(n, v)
    ) as evidence:
        assert not evidence.problems
        # Separate processes, each with its own key and state under its site's folder.
        assert len({p.pid for p in evidence.processes}) == len(sites) + 1
        for slug in sites:
            assert (tmp_path / "witnesses" / slug / "key.pem").exists()
        assert overridden["FEDGOV_WITNESS_QUORUM"] == 2  # a majority of 3
        for name, value in overridden.items():
            setattr(settings, name, value)  # pytest-django's fixture restores them
        append(3)
        row = checkpoint()
        assert timestamping.checkpoint_timestamp(size=row.size).ok
        outcome = witnessing.checkpoint_witness(size=row.size)
        assert outcome.cosigned == 3 and outcome.witnessed

        # A site's witness goes down: the next checkpoint is still signed and witnessed
        # by the quorum, and the one that is down is named.
        evidence.processes[0].kill()
        evidence.processes[0].wait()
        append(2, start=row.size)
        later = checkpoint()
        outcome = witnessing.checkpoint_witness(size=later.size)
        assert outcome.cosigned == 2 and outcome.witnessed
        assert [r.name for r in outcome.failures] == [evidence.witnesses[0][0]]
    assert all(p.poll() is not None for p in evidence.processes)

    # Started again (the demo run twice): same keys, pinned once, state kept.
    pinned = len(trust.trusted(KeyRole.WITNESS))
    with local.running(tmp_path, sites, actor=actor, override=lambda n, v: None) as again:
        assert not again.problems
    assert len(trust.trusted(KeyRole.WITNESS)) == pinned == 3

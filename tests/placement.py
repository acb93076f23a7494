"""Place a round's SuperNodes on this host, as the local deployment (``flower up``) does."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from django.test import override_settings

from fedgov.actors import Actor
from training.models import Round
from training.services.orchestrate import LOCAL_HOST_FILE, round_place_on_host


@pytest.fixture
def local_host(settings, tmp_path):
    """``declare(slugs, country)``: record that ``flower up`` runs these sites here.

    The record lives in a var dir of the test's own, so nothing outlives the test.
    """
    settings.VAR_DIR = tmp_path / "var"

    settings.FEDGOV_LOCAL_HOST_COUNTRY = "DE"

    def declare(slugs, *, country: str = "DE") -> None:
        settings.FEDGOV_LOCAL_HOST_COUNTRY = country
        declare_in(settings.VAR_DIR, slugs, country=country)

    return declare


def declare_in(var_dir, slugs, *, country: str = "DE") -> None:
    """Write the record ``flower up`` leaves in ``var_dir``; the caller sets the country."""
    path = Path(var_dir) / "flower" / LOCAL_HOST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sites": sorted(slugs)}), encoding="utf-8")


def place_on_host(round_: Round, *, actor=None, country: str = "DE") -> Round:
    """approved → placement_verified on this host, stated to be in ``country``.

    The ``flower up`` record for every site of the round's run is written into a var
    dir of its own for the length of the call, so nothing outlives it.
    """
    slugs = {d.site.slug for d in round_.run.datasets.select_related("site")}
    with tempfile.TemporaryDirectory(prefix="local-host-") as var:
        declare_in(var, slugs)
        with override_settings(VAR_DIR=Path(var), FEDGOV_LOCAL_HOST_COUNTRY=country):
            round_place_on_host(actor=actor or Actor.system("test"), round=round_)
    return Round.objects.get(pk=round_.pk)

"""``manage.py federate`` refuses bad input before it starts anything."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def federate(*args: str) -> str:
    out = io.StringIO()
    call_command("federate", *args, stdout=out)
    return out.getvalue()


def test_missing_scenario_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        federate("--scenario", str(tmp_path / "nope.toml"))
    assert not TrainingRun.objects.exists()


def test_scenario_that_is_not_toml_is_refused_naming_why(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(CommandError, match="not valid TOML"):
        federate("--scenario", str(bad))
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("ports", ["19000", "a-b", "19000-19001", "80-200", "19100-19000"])
def test_bad_port_range_is_refused(ports):
    with pytest.raises(CommandError, match="--ports"):
        federate("--ports", ports)
    assert not TrainingRun.objects.exists()


def test_negative_round_count_is_refused():
    with pytest.raises(CommandError, match="--rounds"):
        federate("--rounds", "-1")
    assert not TrainingRun.objects.exists()

"""The conformance tests read ../shared: in CI its absence fails the build, locally it skips."""

from __future__ import annotations

import pytest

from tests.conftest import require_shared


def test_missing_shared_data_fails_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="absent"):
        require_shared(tmp_path / "no-shared")


def test_missing_shared_data_skips_outside_ci(tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="absent"):
        require_shared(tmp_path / "no-shared")


def test_present_shared_data_is_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require_shared(tmp_path) == tmp_path

"""fedgov.tasks.enqueue: the one "broker or inline" branch every service uses."""

from __future__ import annotations

import pytest

from fedgov.tasks import enqueue
from reports import tasks as report_tasks
from training import tasks as training_tasks


@pytest.fixture
def recorded(monkeypatch):
    calls: list[tuple[str, tuple]] = []

    def fake(name):
        def call(*args):
            calls.append((name, args))
            return "ran"

        return call

    monkeypatch.setattr(training_tasks.round_drive, "delay", fake("delay"))
    monkeypatch.setattr(training_tasks.round_drive, "run", fake("run"))
    return calls


def test_with_a_broker_the_task_is_queued_not_run(settings, recorded):
    settings.CELERY_BROKER_URL = "memory://"
    assert enqueue("training.tasks.round_drive", 7, inline=True) is True
    assert recorded == [("delay", (7,))]


def test_without_a_broker_an_inline_task_runs_here(settings, recorded):
    settings.CELERY_BROKER_URL = ""
    assert enqueue("training.tasks.round_drive", 7, inline=True) is False
    assert recorded == [("run", (7,))]


def test_without_a_broker_a_task_that_is_not_inline_is_skipped(settings, recorded):
    settings.CELERY_BROKER_URL = ""
    assert enqueue("training.tasks.round_drive", 7) is False
    assert recorded == []


def test_a_wrong_task_path_fails_loudly_rather_than_dropping_the_work(settings):
    settings.CELERY_BROKER_URL = "memory://"
    with pytest.raises(ImportError):
        enqueue("training.tasks.no_such_task", 1)


def test_the_paths_services_enqueue_name_registered_tasks():
    assert training_tasks.run_start.name == "training.run_start"
    assert training_tasks.round_drive.name == "training.round_drive"
    assert training_tasks.round_release_workloads.name == "training.round_release_workloads"
    assert report_tasks.report_build_task.name == "reports.build"


def test_every_task_path_in_the_code_imports():
    import ast
    from pathlib import Path

    from django.utils.module_loading import import_string

    root = Path(__file__).resolve().parents[2]
    paths = set()
    for folder in ("training", "reports", "sites", "opennebula", "audit", "dashboard"):
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "enqueue"
                    and isinstance(node.args[0], ast.Constant)
                ):
                    paths.add(node.args[0].value)
    assert len(paths) >= 4
    for path in paths:
        assert hasattr(import_string(path), "delay"), path

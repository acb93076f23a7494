"""Celery task of the reports app: thin, takes an id, calls one service."""

from __future__ import annotations

from fedgov.actors import Actor
from fedgov.tasks import fedgov_task
from reports.services import report_build


# A 500-round report takes minutes, not seconds: the house 60 s limit would kill it.
@fedgov_task(name="reports.build", soft_time_limit=3300, time_limit=3600)
def report_build_task(report_id: int) -> str:
    return report_build(actor=Actor.system("reports"), report_id=report_id).status

"""Writes of the reports app: request a report, then build, sign and store it."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.second_factor import require_second_factor
from fedgov.tasks import enqueue
from fedgov.validation import one_of
from reports import bundle as report_bundle
from reports import data as report_data
from reports.assemble import report_input
from reports.choices import ReportStatus
from reports.data import Period, RunRef
from reports.models import Report
from reports.pdf import render
from reports.signing import sign_pdf

logger = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def requester_language(actor: Actor) -> str:
    """The language a report is written in when its request names none: the requester's
    profile, else the language active for the request (LocaleMiddleware), else the default.
    """
    offered = {code for code, _ in settings.LANGUAGES}
    profile = getattr(actor.user, "fedgov_profile", None) if actor.user is not None else None
    for candidate in (getattr(profile, "language", ""), translation.get_language()):
        if candidate in offered:
            return candidate
    return settings.LANGUAGE_CODE


def report_generate(
    *,
    actor: Actor,
    run: RunRef | Any = None,
    period: Period | None = None,
    language: str | None = None,
) -> Report:
    """Queue a signed report of ``run`` (optionally limited to ``period``) or of a period.

    ``run`` is anything with ``pk`` and ``name``: a ``TrainingRun`` or a ``RunRef``.
    ``language`` is one of settings.LANGUAGES; None means the requester's language.

    Raises ``InvalidInput`` when neither is given, the period is empty or reversed, or the
    language is not offered, and
    ``SecondFactorRequired`` when a person's session passed no second factor: a signed
    report speaks for the organisation.
    Writes ledger event ``report.requested``; schedules the ``reports.build`` task after
    commit.
    """
    require_second_factor(actor, act=_("requesting a signed report"))
    errors: dict[str, list[Any]] = {}
    if run is None and period is None:
        errors["run"] = [_("name a run or a period")]
    if period is not None and not period.start < period.end:
        errors["period"] = [_("the period must end after it starts")]
    offered = [code for code, _ in settings.LANGUAGES]
    if language is not None and language not in offered:
        errors["language"] = [one_of(offered)]
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic(durable=True):
        report = Report.objects.create(
            run_id=run.pk if run else None,
            run_name=run.name if run else "",
            period_start=period.start if period else None,
            period_end=period.end if period else None,
            requested_by=actor.user,
            requested_by_name=actor.label,
            language=language or requester_language(actor),
            created_at=clock.now(),
        )
        ledger_append(
            event_type="report.requested",
            actor=actor,
            subject_type="report",
            subject_id=report.pk,
            payload={
                "report_id": str(report.public_id),
                "run_id": run.pk if run else None,
                "period_start": period.start.isoformat() if period else None,
                "period_end": period.end.isoformat() if period else None,
                # A language code, not text in it: the ledger stays language-neutral.
                "language": report.language,
            },
        )
        transaction.on_commit(lambda: _enqueue(report.pk))
    return report


def _enqueue(report_id: int) -> None:
    """Hand the build to a Celery worker, or build now when there is no broker.

    The embedded default runs no worker (see settings): there the report is built in
    the requesting process, and a failure is recorded on the report, not raised.
    """
    if enqueue("reports.tasks.report_build_task", report_id):
        return
    try:
        report_build(actor=Actor.system("reports"), report_id=report_id)
    except Exception:
        logger.exception("report %s failed; its row says why", report_id)


def _claim(report_id: int) -> Report | None:
    """Move a queued report to running; None when another worker has it or it is done."""
    claimed = Report.objects.filter(pk=report_id, status=ReportStatus.QUEUED).update(
        status=ReportStatus.RUNNING, progress=0
    )
    return Report.objects.get(pk=report_id) if claimed else None


def report_build(*, actor: Actor, report_id: int) -> Report:
    """Lay out, sign and store a queued report and its evidence bundle.

    Safe to run twice: only a queued report is claimed; a second call returns the row as
    it is. On success writes ``report.generated`` with both files' SHA-256; on failure
    marks it failed and writes ``report.failed``. Raises ``Report.DoesNotExist``.
    """
    report = _claim(report_id)
    if report is None:
        return Report.objects.get(pk=report_id)
    try:
        paths = _produce(actor, report)
    except Exception as exc:
        logger.exception("report %s failed", report.public_id)
        with transaction.atomic(durable=True):
            Report.objects.filter(pk=report.pk).update(
                status=ReportStatus.FAILED, error=str(exc)[:2000], finished_at=clock.now()
            )
            ledger_append(
                event_type="report.failed",
                actor=actor,
                subject_type="report",
                subject_id=report.pk,
                payload={"report_id": str(report.public_id), "error": type(exc).__name__},
            )
        raise
    pdf, pdf_sha, bundle, bundle_sha, anchor_size = paths
    with transaction.atomic(durable=True):
        Report.objects.filter(pk=report.pk).update(
            status=ReportStatus.DONE,
            progress=100,
            pdf_name=pdf.name,
            pdf_sha256=pdf_sha,
            bundle_name=bundle.name,
            bundle_sha256=bundle_sha,
            anchor_size=anchor_size,
            finished_at=clock.now(),
        )
        ledger_append(
            event_type="report.generated",
            actor=actor,
            subject_type="report",
            subject_id=report.pk,
            payload={
                "report_id": str(report.public_id),
                "pdf_sha256": pdf_sha,
                "bundle_sha256": bundle_sha,
                "anchor_size": anchor_size,
            },
        )
    return Report.objects.get(pk=report.pk)


def _period(report: Report) -> Period | None:
    if report.period_start is None or report.period_end is None:
        return None
    return Period(report.period_start, report.period_end)


def _produce(actor: Actor, report: Report) -> tuple[Path, str, Path, str, int]:
    period = _period(report)
    run_ids = report_data.report_run_ids(run_id=report.run_id, period=period)
    total = sum(len(report_data.round_series(run_id=r, period=period)) for r in run_ids) or 1
    folder = Path(settings.FEDGOV_REPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"report-{report.public_id}"
    with tempfile.TemporaryDirectory(prefix="fedgov-report-") as work:
        data_file = Path(work) / "data.jsonl"
        done = 0
        with data_file.open("wb") as data:

            def on_round(facts) -> None:
                nonlocal done
                data.write(report_bundle.data_line("round", facts))
                done += 1
                if done % 10 == 0 or done == total:
                    # Outside the build's transaction on purpose: readers see it move.
                    Report.objects.filter(pk=report.pk).update(
                        progress=min(99, done * 100 // total)
                    )

            doc = report_input(
                report_id=str(report.public_id),
                run_ids=run_ids,
                run_name=report.run_name or None,
                period=period,
                generated_at=clock.now(),
                actor=actor,
                on_round=on_round,
            )
            for run_id in run_ids:
                data.write(report_bundle.data_line("run", report_data.run_header(run_id=run_id)))
            unsigned = Path(work) / "unsigned.pdf"
            # Only the PDF is written in the report's language; the data lines above and
            # the bundle are built from the same facts in their neutral form.
            with translation.override(report.language):
                render(doc, str(unsigned))
        pdf = folder / f"{stem}.pdf"
        sign_pdf(source=unsigned, out=pdf)
        pdf_sha = _sha256(pdf)
        bundle = folder / f"{stem}.evidence.zip"
        bundle_sha = report_bundle.report_bundle_write(
            out=bundle,
            report_id=str(report.public_id),
            data_file=data_file,
            pdf_sha256=pdf_sha,
            cited=doc.cited,
            anchor_size=doc.anchor.size,
        )
    return pdf, pdf_sha, bundle, bundle_sha, doc.anchor.size


def report_file(*, report: Report, kind: str) -> Path:
    """The stored file of a done report. Raises ``TransitionNotAllowed`` before it is done."""
    if report.status != ReportStatus.DONE:
        raise TransitionNotAllowed(
            format_lazy(
                _("report {report} is {status}"), report=report.public_id, status=report.status
            )
        )
    name = report.pdf_name if kind == "pdf" else report.bundle_name
    return Path(settings.FEDGOV_REPORT_DIR) / name

"""Assemble a report's input from the selectors: the only place reports read fedgov data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from fedgov.actors import Actor
from reports import data as report_data
from reports.data import Period, RoundFacts
from reports.ledger import anchor_checkpoint, cited_proofs
from reports.pdf import Anchor, ReportInput, RunSection


def scope_text(run_name: str | None, period: Period | None) -> Any:
    """The report's scope, read in the language active when it is shown (lazy)."""
    if period is None:
        if run_name:
            return format_lazy(_("Run {name}, all rounds"), name=run_name)
        return _("All runs, all rounds")
    span = format_lazy(
        _("{start} to {end} UTC"),
        start=f"{period.start:%Y-%m-%d %H:%M}",
        end=f"{period.end:%Y-%m-%d %H:%M}",
    )
    if run_name:
        return format_lazy(_("Run {name}, rounds from {span}"), name=run_name, span=span)
    return format_lazy(_("All runs, rounds from {span}"), span=span)


def _sections(run_ids: list[int], period: Period | None) -> Iterator[RunSection]:
    for run_id in run_ids:
        yield RunSection(
            header=report_data.run_header(run_id=run_id),
            series=report_data.round_series(run_id=run_id, period=period),
            rounds=report_data.report_rounds(run_id=run_id, period=period),
        )


def report_input(
    *,
    report_id: str,
    run_ids: list[int],
    run_name: str | None,
    period: Period | None,
    generated_at: datetime,
    actor: Actor,
    on_round: Callable[[RoundFacts], None],
) -> ReportInput:
    anchor: Anchor = anchor_checkpoint(actor=actor)
    return ReportInput(
        report_id=report_id,
        # Lazy: the PDF reads them in the report's language when it lays them out.
        title=format_lazy(_("Audit report: {name}"), name=run_name)
        if run_name
        else _("Audit report: all runs"),
        scope=scope_text(run_name, period),
        organisation=settings.FEDGOV_REPORT_ORGANISATION,
        generated_at=generated_at,
        anchor=anchor,
        sections=_sections(run_ids, period),
        proofs=lambda seqs: cited_proofs(seqs, anchor.size),
        on_round=on_round,
    )

"""The GDPR Art. 30 record of processing activities as CSV, JSON and PDF.

Two views: the controller's record (Art. 30(1): one row per dataset and purpose, with
joint controllers, lawful basis, categories, recipients, transfers and retention) and
the processor's record (Art. 30(2): fedgov's operator processing on behalf of each
controller). Built from ``reports.data.processing_activities``; no ORM here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.utils import formats, translation
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

from reports.data import ProcessingActivity, leg_ground, role_label
from reports.pdf import S, data_table, escape
from reports.signing import sign_pdf_bytes

VIEWS = ("controller", "processor")
FORMATS = ("csv", "json", "pdf")
SECURITY = _(
    "Federated learning: personal data stay at each site; only model updates leave. "
    "Training is allowed per round by a GDPR gate and an Ed25519-signed round ticket the "
    "site checks; every decision and update hash is kept in an append-only, signed Merkle "
    "ledger; subjects appear only as pseudonyms computed by the site."
)

CONTROLLER_COLUMNS = [
    ("controller", _("Controller")),
    ("role", _("Role of the site")),
    ("country", _("Country")),
    ("contact", _("Contact")),
    ("joint_controllers", _("Joint controllers (Art. 26)")),
    ("purpose", _("Purpose")),
    ("dataset", _("Dataset")),
    ("lawful_basis", _("Lawful basis")),
    ("art9_condition", _("Art. 9 condition")),
    ("data_categories", _("Categories of personal data")),
    ("data_subjects", _("Categories of data subjects")),
    ("recipients", _("Recipients")),
    ("transfers", _("Transfers to third countries and safeguards")),
    ("retention_until", _("Erasure time limit")),
    ("processing_countries", _("Where processed")),
    ("security", _("Security measures (Art. 32)")),
]
PROCESSOR_COLUMNS = [
    ("processor", _("Processor")),
    ("controller", _("On behalf of (controller)")),
    ("contact", _("Controller contact")),
    ("processing", _("Categories of processing")),
    ("transfers", _("Transfers to third countries and safeguards")),
    ("security", _("Security measures (Art. 32)")),
]


def _transfers(a: ProcessingActivity) -> str:
    legs = (
        f"{src} → {dst}: {leg_ground(json.loads(reason), ground)}"
        for src, dst, ground, reason in a.transfers
    )
    # "none" names no transfer: feminine in German and Spanish, unlike the root's "none".
    return "; ".join(legs) or pgettext("no transfer", "none")


def controller_rows(activities: Sequence[ProcessingActivity]) -> list[dict[str, str]]:
    return [
        {
            "controller": a.organisation,
            "role": role_label(a.agreement_type),
            "country": a.country,
            "contact": a.contact,
            "joint_controllers": ", ".join(a.joint_controllers) or "—",
            "purpose": f"{a.purpose_name} [{a.purpose_code}]",
            "dataset": f"{a.site_slug}/{a.dataset}"
            + (gettext(" (withdrawn)") if a.withdrawn else ""),
            "lawful_basis": f"Art. {a.lawful_basis}",
            "art9_condition": f"Art. {a.art9_condition}" if a.art9_condition else "—",
            "data_categories": ", ".join(a.data_categories)
            + (gettext(" (special category)") if a.special_category else ""),
            "data_subjects": gettext("subjects who consented")
            if a.lawful_basis == "6(1)(a)"
            else gettext("subjects of %(dataset)s") % {"dataset": a.dataset},
            "recipients": (
                gettext("federation aggregator in %(countries)s (model updates only)")
                % {"countries": ", ".join(a.aggregator_countries)}
            )
            if a.aggregator_countries
            else gettext("none: not used by any run"),
            "transfers": _transfers(a),
            "retention_until": formats.date_format(a.retention_until, "SHORT_DATE_FORMAT")
            if a.retention_until
            else "—",
            "processing_countries": ", ".join(a.processing_countries),
            "security": str(SECURITY),
        }
        for a in activities
    ]


def processor_rows(
    activities: Sequence[ProcessingActivity], *, processor: str
) -> list[dict[str, str]]:
    by_controller: dict[str, list[ProcessingActivity]] = {}
    for a in activities:
        by_controller.setdefault(a.organisation, []).append(a)
    rows = []
    for controller, items in sorted(by_controller.items()):
        runs = sorted({r for a in items for r in a.runs})
        purposes = sorted({a.purpose_code for a in items})
        rows.append(
            {
                "processor": processor,
                "controller": controller,
                "contact": items[0].contact,
                "processing": (
                    gettext(
                        "Gate checks over consent pseudonyms, signing of round tickets, "
                        "aggregation and hashing of model updates for purposes %(purposes)s"
                    )
                    % {"purposes": ", ".join(purposes)}
                    + (
                        gettext("; runs %(runs)s") % {"runs": ", ".join(runs)}
                        if runs
                        else gettext("; no run yet")
                    )
                ),
                "transfers": "; ".join(sorted({_transfers(a) for a in items})),
                "security": str(SECURITY),
            }
        )
    return rows


def rows_for(
    view: str, activities: Sequence[ProcessingActivity], *, processor: str
) -> tuple[list[tuple[str, Any]], list[dict[str, str]]]:
    if view == "controller":
        return CONTROLLER_COLUMNS, controller_rows(activities)
    return PROCESSOR_COLUMNS, processor_rows(activities, processor=processor)


# A cell starting with one of these is read as a formula by Excel, LibreOffice and Google
# Sheets (OWASP "CSV Injection"); tab and carriage return are how the same start hides.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """``value`` as a cell a spreadsheet shows as text: a leading formula character is
    preceded by an apostrophe, as OWASP advises. The JSON export keeps the text as typed.
    """
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(columns, rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([spreadsheet_safe(str(label)) for _key, label in columns])
    for row in rows:
        writer.writerow([spreadsheet_safe(row[key]) for key, _label in columns])
    return out.getvalue().encode("utf-8-sig")  # the BOM lets spreadsheet tools read UTF-8


def to_json(view: str, columns, rows, *, generated_at: datetime, processor: str) -> bytes:
    document = {
        "record": "GDPR Art. 30 record of processing activities",
        "view": view,
        "article": "30(1)" if view == "controller" else "30(2)",
        "generated_at": generated_at.isoformat(),
        "issued_by": processor,
        "columns": {key: str(label) for key, label in columns},
        "activities": rows,
    }
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def to_pdf(view: str, columns, rows, *, generated_at: datetime, processor: str) -> bytes:
    out = io.BytesIO()
    page = landscape(A4)
    width = page[0] - 24 * mm
    doc = SimpleDocTemplate(
        out,
        pagesize=page,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=gettext("Art. 30 record of processing activities"),
        author=processor,
        invariant=1,
    )
    article = (
        gettext("Art. 30(1), controller")
        if view == "controller"
        else gettext("Art. 30(2), processor")
    )
    # The security text is the same on every row: state it once above the table.
    shown = [(k, label) for k, label in columns if k != "security"]
    story = [
        Paragraph(gettext("Record of processing activities"), S["title"]),
        Paragraph(
            escape(
                gettext("GDPR %(article)s view · issued by %(processor)s · %(at)s")
                % {"article": article, "processor": processor, "at": _when(generated_at)}
            ),
            S["subtitle"],
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            "<b>"
            + escape(gettext("Security measures (Art. 32)."))
            + "</b> "
            + escape(str(SECURITY)),
            S["body"],
        ),
        Spacer(1, 4 * mm),
    ]
    weights = {
        "country": 0.6,
        "lawful_basis": 0.8,
        "art9_condition": 0.8,
        "transfers": 1.4,
        "processing": 3.0,
        "purpose": 1.3,
        "contact": 1.5,
        "joint_controllers": 1.2,
        "data_categories": 1.2,
        "data_subjects": 1.2,
        "recipients": 1.4,
        "controller": 1.2,
    }
    total = sum(weights.get(k, 1.0) for k, _ in shown)
    widths = [width * weights.get(k, 1.0) / total for k, _ in shown]
    story.append(
        data_table(
            [str(label) for _k, label in shown],
            [[row[k] for k, _ in shown] for row in rows]
            or [[gettext("no processing recorded")] + [""] * (len(shown) - 1)],
            widths,
            long=True,
        )
    )
    doc.build(story)
    return out.getvalue()


def _when(at: datetime) -> str:
    """The record's time in the house format of its language, in UTC."""
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return formats.date_format(utc, "SHORT_DATETIME_FORMAT")


def render(
    view: str,
    output: str,
    activities,
    *,
    generated_at: datetime,
    processor: str,
    language: str = "en",
):
    """``(bytes, content type, file name)`` of the record in ``language`` (labels, the
    GDPR's terms, dates). ``ValueError`` on a bad choice."""
    with translation.override(language):
        return _render(view, output, activities, generated_at=generated_at, processor=processor)


def _render(view: str, output: str, activities, *, generated_at: datetime, processor: str):
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}")
    if output not in FORMATS:
        raise ValueError(f"output must be one of {', '.join(FORMATS)}")
    columns, rows = rows_for(view, activities, processor=processor)
    name = f"art30-{view}-{generated_at:%Y%m%d}.{output}"
    if output == "csv":
        return to_csv(columns, rows), "text/csv; charset=utf-8", name
    if output == "json":
        body = to_json(view, columns, rows, generated_at=generated_at, processor=processor)
        return body, "application/json", name
    body = to_pdf(view, columns, rows, generated_at=generated_at, processor=processor)
    # Signed like the audit reports (PAdES B-LT, timestamped when a TSA is configured): the
    # record is evidence handed to a supervisory authority (Art. 30(4)).
    body = sign_pdf_bytes(body, reason=f"GDPR Art. 30 record ({view} view)")
    return body, "application/pdf", name

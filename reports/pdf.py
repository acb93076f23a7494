"""The audit report as a PDF a lawyer can read, built with reportlab platypus from plain data.

Rounds stream: the story handed to platypus is a lazy list that pulls flowables from a
generator as pages fill, so a run of 500 rounds × 50 sites is never held as flowables at
once. This module touches no database; callers pass dataclasses and callables.
"""

from __future__ import annotations

import base64
import itertools
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Any
from xml.sax.saxutils import escape

from django.utils import formats
from django.utils.translation import gettext, gettext_noop, ngettext, pgettext, pgettext_lazy
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfdoc
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    LongTable,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from fedgov.numbers import number
from opennebula.choices import WorkloadState
from reports import fonts
from reports.data import (
    RoundFacts,
    RoundPoint,
    RunHeader,
    leg_data,
    leg_ground,
    leg_importer,
    role_label,
)
from sites.choices import PolicyStatus
from training.choices import ApprovalDecision, DpiaStatus, DpMechanism, RoundState
from training.reasons import article_text, reason_text

INK = colors.HexColor("#1f2a37")
MUTED = colors.HexColor("#5b6675")
ACCENT = colors.HexColor("#1d4e89")
RULE = colors.HexColor("#d5dae1")
PASS_BG = colors.HexColor("#e3f4e8")
FAIL_BG = colors.HexColor("#fbe4e4")
STRIPE = colors.HexColor("#f5f7fa")
PASS_FG = colors.HexColor("#1e6b35")
FAIL_FG = colors.HexColor("#a32020")

PAGE_W, PAGE_H = A4
MARGIN = 18 * mm
BODY_W = PAGE_W - 2 * MARGIN
LOOKAHEAD = 64


@dataclass(frozen=True)
class Anchor:
    """The signed ledger checkpoint the report is anchored to."""

    size: int
    root: bytes
    key_id: str
    created_at: datetime
    note: str
    # The witnesses' cosignatures over this checkpoint and its RFC 3161 timestamp.
    cosignatures: tuple[AnchorCosignature, ...] = ()
    timestamp: AnchorTimestamp | None = None


@dataclass(frozen=True)
class AnchorCosignature:
    """One witness's ``cosignature/v1`` over the anchor, as stored (and checked) by fedgov."""

    witness: str
    key_id: str
    time: datetime
    size: int
    line: str


@dataclass(frozen=True)
class AnchorTimestamp:
    """The RFC 3161 token dating the anchor's note; ``None`` on the anchor: no trusted time."""

    gen_time: datetime
    tsa: str
    serial: str
    token_sha256: str


@dataclass(frozen=True)
class CitedProof:
    """One cited ledger event and its RFC 9162 inclusion proof against the anchor."""

    seq: int
    event_type: str
    subject: str
    leaf_hash: bytes
    path: tuple[bytes, ...]


@dataclass(frozen=True)
class RunSection:
    header: RunHeader
    series: list[RoundPoint]
    rounds: Iterable[RoundFacts]


@dataclass
class ReportInput:
    """Everything the PDF shows. ``sections`` and their rounds may be lazy iterables."""

    report_id: str
    title: Any  # text, or a lazy translation read in the report's language
    scope: Any
    organisation: str
    generated_at: datetime
    anchor: Anchor
    sections: Iterable[RunSection]
    proofs: Callable[[list[int]], Iterator[CitedProof]]
    on_round: Callable[[RoundFacts], None] = lambda _facts: None
    cited: list[int] = field(default_factory=list)


# --- the lazy story --------------------------------------------------------------------------


class LazyStory:
    """The list interface platypus uses on its story, filled from a generator on demand.

    ``BaseDocTemplate.build`` only looks at the head of the list (index, delete, insert
    and prepend a split remainder), and asks ``len`` to know when to stop; ``len`` here
    reports the buffered look-ahead, which is non-zero until the generator is spent.
    """

    def __init__(self, source: Iterator[Flowable]) -> None:
        self._source = source
        self._buffer: deque[Flowable] = deque()
        self._done = False

    def _fill(self, n: int) -> None:
        while not self._done and len(self._buffer) < n:
            try:
                self._buffer.append(next(self._source))
            except StopIteration:
                self._done = True

    def __len__(self) -> int:
        self._fill(LOOKAHEAD)
        return len(self._buffer)

    def __getitem__(self, index):
        if isinstance(index, slice):
            self._fill((index.stop or LOOKAHEAD) + 1)
            return list(itertools.islice(self._buffer, index.start or 0, index.stop))
        self._fill(index + 1)
        return self._buffer[index]

    def __delitem__(self, index) -> None:
        if isinstance(index, slice):
            for _ in range((index.stop or 0) - (index.start or 0)):
                self._buffer.popleft()
            return
        del self._buffer[index]

    def __setitem__(self, index, values) -> None:
        if not (isinstance(index, slice) and (index.start or 0) == 0 and index.stop == 0):
            raise TypeError("the lazy story only accepts prepends (story[0:0] = items)")
        self._buffer.extendleft(reversed(list(values)))

    def insert(self, index: int, value: Flowable) -> None:
        if index != 0:
            raise TypeError("the lazy story only accepts inserts at its head")
        self._buffer.appendleft(value)


# --- styles and small helpers ------------------------------------------------------------------

_base = getSampleStyleSheet()
for _style in _base.byName.values():
    # Every inherited style prints in the shipped fonts (see reports/fonts).
    if hasattr(_style, "fontName"):
        _style.fontName = fonts.STANDARD_TO_SHIPPED.get(_style.fontName, fonts.SANS)
S = {
    "title": ParagraphStyle(
        "title", parent=_base["Title"], fontSize=26, leading=31, textColor=INK, alignment=0
    ),
    "subtitle": ParagraphStyle(
        "subtitle", parent=_base["Normal"], fontSize=13, leading=17, textColor=MUTED
    ),
    "h1": ParagraphStyle(
        "h1", parent=_base["Heading1"], fontSize=17, leading=21, textColor=ACCENT, spaceAfter=6
    ),
    "h2": ParagraphStyle(
        "h2", parent=_base["Heading2"], fontSize=12.5, leading=16, textColor=INK, spaceBefore=8
    ),
    "h3": ParagraphStyle(
        "h3", parent=_base["Heading3"], fontSize=10, leading=13, textColor=INK, spaceBefore=6
    ),
    "body": ParagraphStyle("body", parent=_base["Normal"], fontSize=9.5, leading=13.5),
    "small": ParagraphStyle(
        "small", parent=_base["Normal"], fontSize=8, leading=10.5, textColor=MUTED
    ),
    "cell": ParagraphStyle("cell", parent=_base["Normal"], fontSize=8, leading=10),
    "cellhead": ParagraphStyle(
        "cellhead",
        parent=_base["Normal"],
        fontSize=8,
        leading=10,
        textColor=colors.white,
        fontName=fonts.SANS_BOLD,
    ),
    "mono": ParagraphStyle(
        "mono", parent=_base["Code"], fontSize=6.5, leading=8, textColor=INK, leftIndent=0
    ),
    "grid": ParagraphStyle(
        "grid", parent=_base["Normal"], fontSize=6, leading=7.5, alignment=TA_CENTER
    ),
    "figure": ParagraphStyle(
        "figure",
        parent=_base["Normal"],
        fontSize=20,
        leading=24,
        textColor=ACCENT,
        fontName=fonts.SANS_BOLD,
    ),
}


def P(text: Any, style: str = "cell") -> Paragraph:
    return Paragraph(escape(str(text)), S[style])


def _fmt(value: Any) -> str:
    """A cell's text; dates in the house format of the report's language, always in UTC."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return formats.date_format(utc, "SHORT_DATETIME_FORMAT")
    if isinstance(value, date):
        return formats.date_format(value, "SHORT_DATE_FORMAT")
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, int | float):
        # Counts and figures in the report's language: "12.345" and "0,5" in German.
        # Identifiers a reader compares with other text (ledger seq, tree size) are
        # passed as str and stay as they are.
        return number(value)
    return str(value)


def _ident(value: int | None) -> str | None:
    """An id (site, zone, VM) as OpenNebula and the admin print it: never grouped."""
    return None if value is None else str(value)


def _short(digest: str, n: int = 16) -> str:
    return f"{digest[:n]}…" if len(digest) > n else digest or "—"


class Mono(str):
    """Cell text laid out as is, in the table's monospace columns (hashes, proofs)."""

    __slots__ = ()


def _cell(value: Any, width: float) -> Any:
    """Text that fits its column stays a plain string: a Paragraph per cell costs most of
    a table's layout time, and only text wider than the column needs wrapping."""
    if isinstance(value, Flowable | Mono):
        return value
    text = _fmt(value)
    return P(text) if stringWidth(text, fonts.SANS, 8) > width - 7 else text


_CELL_PADDING = 12  # points: reportlab's default 6 on each side of a cell


def _head(text: str, width: float) -> Paragraph:
    """A column heading whose longest word fits its column: a smaller size, down to 5.5
    points, rather than a word split mid-letter (German and Polish words run long)."""
    style = S["cellhead"]
    longest = max((stringWidth(w, style.fontName, style.fontSize) for w in text.split()), default=0)
    room = width - _CELL_PADDING
    if longest <= room:
        return P(text, "cellhead")
    size = max(5.5, style.fontSize * room / longest)
    fitted = ParagraphStyle(f"cellhead-{size:.2f}", parent=style, fontSize=size, leading=size + 2)
    return Paragraph(escape(text), fitted)


def data_table(
    header: list[str],
    rows: list[list[Any]],
    widths: list[float],
    *,
    long: bool = False,
    mono: tuple[int, ...] = (),
    mono_size: float = 6,
):
    data = [[_head(h, w) for h, w in zip(header, widths, strict=False)]] + [
        [_cell(c, w) for c, w in zip(row, widths, strict=False)] for row in rows
    ]
    cls = LongTable if long else Table
    table = cls(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), ACCENT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        # Plain-string cells too: the table's default (Helvetica) has no ł, ś, ą or œ.
        ("FONTNAME", (0, 1), (-1, -1), fonts.SANS),
        ("FONTSIZE", (0, 1), (-1, -1), 8),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
    for col in mono:
        style += [
            ("FONTNAME", (col, 1), (col, -1), fonts.MONO),
            ("FONTSIZE", (col, 1), (col, -1), mono_size),
            ("LEADING", (col, 1), (col, -1), mono_size + 1.2),
        ]
    style += [("BACKGROUND", (0, i), (-1, i), STRIPE) for i in range(2, len(data), 2)]
    table.setStyle(TableStyle(style))
    return table


def _facts_box(pairs: list[tuple[str, Any]], width: float = BODY_W) -> Table:
    data = [[P(k, "small"), P(_fmt(v))] for k, v in pairs]
    table = Table(data, colWidths=[45 * mm, width - 45 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                ("BACKGROUND", (0, 0), (0, -1), STRIPE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -2), 0.25, RULE),
            ]
        )
    )
    return table


class Heading(Paragraph):
    """A heading the PDF outline (the viewer's bookmarks) lists."""

    def __init__(self, text: str, level: int) -> None:
        super().__init__(escape(text), S["h1" if level == 0 else "h2"])
        self.toc_level = level
        self.toc_text = text


# --- charts -----------------------------------------------------------------------------------


def _chart_frame(title: str) -> Drawing:
    drawing = Drawing(BODY_W, 62 * mm)
    drawing.add(String(0, 58 * mm, title, fontName=fonts.SANS_BOLD, fontSize=9, fillColor=INK))
    return drawing


def _label(choices: Any, value: str | None) -> str:
    """A stored enum value by its choice label in the active language (the admin's words);
    a value the choices do not know (an older row) as stored."""
    if not value:
        return ""
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _in_sentence(label: str) -> str:
    """A label inside a sentence: "DPIA D-1 is approved", not "is Approved"."""
    return label[:1].lower() + label[1:]


def _axis_number(value: float) -> str:
    """A value-axis tick in the report's language: "0,2" in German, "0.2" in English."""
    if float(value).is_integer():
        return number(int(value))
    return number(value, significant=6)


def _labels(numbers: list[int]) -> list[str]:
    step = max(1, len(numbers) // 20)
    return [str(n) if i % step == 0 else "" for i, n in enumerate(numbers)]


def bar_chart(title: str, numbers: list[int], values: list[float], color) -> Drawing:
    drawing = _chart_frame(title)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 8 * mm, BODY_W - 16 * mm, 44 * mm
    chart.data = [values or [0]]
    chart.categoryAxis.categoryNames = _labels(numbers) or [""]
    chart.categoryAxis.labels.fontSize = 6.5
    chart.categoryAxis.labels.fontName = fonts.SANS
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = fonts.SANS
    chart.valueAxis.labelTextFormat = _axis_number
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max([*values, 1]) * 1.15
    chart.bars[0].fillColor = color
    chart.bars[0].strokeColor = None
    chart.barSpacing = 0.5
    drawing.add(chart)
    return drawing


def line_chart(title: str, numbers: list[int], values: list[float | None]) -> Drawing:
    drawing = _chart_frame(title)
    points = [v if v is not None else 0.0 for v in values]
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 8 * mm, BODY_W - 16 * mm, 44 * mm
    chart.data = [points or [0.0]]
    chart.categoryAxis.categoryNames = _labels(numbers) or [""]
    chart.categoryAxis.labels.fontSize = 6.5
    chart.categoryAxis.labels.fontName = fonts.SANS
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = fonts.SANS
    chart.valueAxis.labelTextFormat = _axis_number
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = 1
    chart.valueAxis.valueStep = 0.2
    chart.lines[0].strokeColor = ACCENT
    chart.lines[0].strokeWidth = 1.5
    drawing.add(chart)
    if not any(v is not None for v in values):
        drawing.add(
            String(
                BODY_W / 2,
                30 * mm,
                gettext("no accuracy was reported"),
                fontName=fonts.SANS,
                fontSize=8,
                fillColor=MUTED,
                textAnchor="middle",
            )
        )
    return drawing


# --- sections ---------------------------------------------------------------------------------


def _cover(doc: ReportInput, headers: list[RunHeader]) -> Iterator[Flowable]:
    yield Spacer(1, 38 * mm)
    yield Paragraph(gettext("Audit report"), S["subtitle"])
    yield Paragraph(escape(str(doc.title)), S["title"])
    yield Spacer(1, 4 * mm)
    yield Paragraph(escape(str(doc.scope)), S["subtitle"])
    yield Spacer(1, 14 * mm)
    controllers = sorted(
        {f"{c.organisation} ({c.country})" for h in headers for c in h.controllers}
    )
    purposes = sorted({f"{h.purpose_name} [{h.purpose_code}]" for h in headers})
    yield _facts_box(
        [
            (
                ngettext("Controller", "Controllers", len(controllers)),
                "; ".join(controllers) or pgettext("report facts", "none recorded"),
            ),
            (
                ngettext("Run", "Runs", len(headers)),
                ", ".join(h.name for h in headers) or gettext("no run in this scope"),
            ),
            (gettext("Purpose"), "; ".join(purposes) or "—"),
            (gettext("Period"), str(doc.scope)),
            (gettext("Generated at"), doc.generated_at),
            (gettext("Report id"), doc.report_id),
            (gettext("Issued by"), doc.organisation),
            (
                gettext("Anchored to"),
                gettext("ledger checkpoint at size %(size)s, key %(key)s")
                % {"size": doc.anchor.size, "key": doc.anchor.key_id},
            ),
        ]
    )
    yield Spacer(1, 12 * mm)
    yield Paragraph(
        gettext(
            "This report is signed electronically (PAdES). A JSON evidence bundle with the same "
            "content, the cited ledger entries, their inclusion proofs and the public keys is "
            "delivered beside it and can be checked offline with %(command)s. Consent is "
            "reported as counts only; no data subject is named."
        )
        % {"command": "<font face='FedgovMono'>python -m audit.verify</font>"},
        S["small"],
    )
    yield NextPageTemplate("body")
    yield PageBreak()


def _counted(template: str, count: int) -> str:
    """An ``ngettext`` sentence chosen for ``count``, with the count written as the reader
    writes numbers."""
    return template % {"count": number(count)}


def _summary(header: RunHeader, series: list[RoundPoint]) -> Iterator[Flowable]:
    total = len(series)
    allowed = sum(1 for p in series if p.gate_outcome == "allowed")
    blocked = sum(1 for p in series if p.gate_outcome == "blocked")
    # Per site and per round: a site refused in every round of allowed rounds is not
    # "blocked 0".
    refused = sum(p.sites - p.eligible_sites for p in series)
    closed = sum(1 for p in series if p.state == "closed")
    excluded = sum(p.excluded_subjects for p in series)
    accuracies = [p.accuracy for p in series if p.accuracy is not None]
    yield Heading(gettext("Run %(name)s: summary") % {"name": header.name}, 0)
    dpia = header.dpia
    if dpia is None:
        dpia_text = gettext("no DPIA is recorded")
    elif dpia.valid_until:
        dpia_text = gettext("DPIA %(reference)s is %(status)s, valid until %(date)s") % {
            "reference": dpia.reference,
            "status": _in_sentence(_label(DpiaStatus, dpia.status)),
            "date": _fmt(dpia.valid_until),
        }
    else:
        dpia_text = gettext("DPIA %(reference)s is %(status)s") % {
            "reference": dpia.reference,
            "status": _in_sentence(_label(DpiaStatus, dpia.status)),
        }
    sites = len(header.controllers)
    # One sentence per count, so each count's noun takes its language's plural form.
    sentences = [
        gettext(
            "Run <b>%(name)s</b> trains a shared model for the purpose <b>%(purpose)s</b>, "
            "aggregated in %(country)s, under policy <b>%(policy)s v%(version)s</b>; %(dpia)s."
        )
        % {
            "name": escape(header.name),
            "purpose": escape(header.purpose_name),
            "country": escape(header.aggregator_country),
            "policy": escape(header.policy.name),
            "version": header.policy.version,
            "dpia": escape(dpia_text),
        },
        _counted(
            ngettext("The run spans %(count)s site.", "The run spans %(count)s sites.", sites),
            sites,
        ),
        _counted(
            ngettext(
                "This report covers %(count)s round.", "This report covers %(count)s rounds.", total
            ),
            total,
        ),
        gettext("The GDPR gate allowed %(allowed)s and blocked %(blocked)s of them.")
        % {"allowed": number(allowed), "blocked": number(blocked)},
        _counted(
            ngettext(
                "The gate refused a site %(count)s time (per site and round).",
                "The gate refused a site %(count)s times (per site and round).",
                refused,
            ),
            refused,
        ),
        _counted(
            ngettext(
                "Of these, %(count)s round closed normally.",
                "Of these, %(count)s rounds closed normally.",
                closed,
            ),
            closed,
        ),
        _counted(
            ngettext(
                "In all, %(count)s subject was excluded from training because their consent "
                "had been withdrawn or had expired at the round's instant.",
                "In all, %(count)s subjects were excluded from training because their consent "
                "had been withdrawn or had expired at the round's instant.",
                excluded,
            ),
            excluded,
        ),
    ]
    text = " ".join(sentences)
    if accuracies:
        text += gettext(" Model accuracy went from %(first)s to %(last)s.") % {
            "first": number(accuracies[0], 2),
            "last": number(accuracies[-1], 2),
        }
    yield Paragraph(text, S["body"])
    yield Spacer(1, 4 * mm)
    figures = [
        (number(total), gettext("rounds")),
        (number(allowed), gettext("allowed by the gate")),
        (f"{number(blocked)} / {number(refused)}", gettext("rounds blocked / site-rounds refused")),
        (number(excluded), gettext("subjects excluded")),
    ]
    cells = [[Paragraph(v, S["figure"]) for v, _ in figures], [P(k, "small") for _, k in figures]]
    box = Table(cells, colWidths=[BODY_W / 4] * 4, hAlign="LEFT")
    box.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                ("LINEAFTER", (0, 0), (-2, -1), 0.25, RULE),
                ("BACKGROUND", (0, 0), (-1, -1), STRIPE),
            ]
        )
    )
    yield box
    numbers = [p.number for p in series]
    yield Heading(gettext("Trends across rounds"), 1)
    yield bar_chart(
        gettext("Sites eligible per round"),
        numbers,
        [p.eligible_sites for p in series],
        colors.HexColor("#3a7d44"),
    )
    yield bar_chart(
        gettext("Subjects excluded per round (consent withdrawn or expired)"),
        numbers,
        [p.excluded_subjects for p in series],
        colors.HexColor("#b5523b"),
    )
    yield line_chart(
        gettext("Model accuracy per round (example-weighted mean reported by the sites)"),
        numbers,
        [p.accuracy for p in series],
    )


def epsilon_chart(numbers: list[int], epsilons: list[float | None], limit: float | None):
    """Cumulative ε per round (Flower's RDP accountant) against the policy's limit."""
    drawing = _chart_frame(gettext("Cumulative ε per round against the budget"))
    known = [e for e in epsilons if e is not None]
    top = max([*known, limit or 0.0, 1e-9]) * 1.15
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 8 * mm, BODY_W - 16 * mm, 44 * mm
    # A round without ε (released without noise) is drawn at the top: unbounded.
    chart.data = [[e if e is not None else top for e in epsilons] or [0.0]]
    if limit is not None:
        chart.data.append([limit] * max(len(epsilons), 1))
    chart.categoryAxis.categoryNames = _labels(numbers) or [""]
    chart.categoryAxis.labels.fontSize = 6.5
    chart.categoryAxis.labels.fontName = fonts.SANS
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = fonts.SANS
    chart.valueAxis.labelTextFormat = _axis_number
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = top
    chart.lines[0].strokeColor = ACCENT
    chart.lines[0].strokeWidth = 1.5
    if limit is not None:
        chart.lines[1].strokeColor = colors.HexColor("#b5523b")
        chart.lines[1].strokeDashArray = (3, 2)
    drawing.add(chart)
    return drawing


def _privacy(header: RunHeader) -> Iterator[Flowable]:
    """Mechanism, parameters, ε per round against the limit, δ, and sites' own refusals."""
    p = header.privacy
    if p is None:
        return
    yield Heading(gettext("Differential privacy"), 1)
    if p.mechanism == "none" and p.limit is None and not p.rounds:
        yield Paragraph(
            gettext(
                "The run applies no differential-privacy mechanism and its policy sets no "
                "privacy budget: this report claims no ε."
            ),
            S["body"],
        )
        # A site's own policy (purpose, aggregator, approvals) refuses with or without DP.
        yield from _site_refusals(p.refusals)
        return
    yield _facts_box(
        [
            (gettext("Mechanism"), _label(DpMechanism, p.mechanism)),
            (gettext("Clipping norm C"), p.clipping_norm),
            (gettext("Noise multiplier z"), p.noise_multiplier),
            (gettext("Target ε (derivation)"), p.target_epsilon),
            (gettext("Budget ε"), p.limit),
            ("δ", p.delta),
            (gettext("Neighbouring relation"), p.relation),
            (
                gettext("Mechanism required by policy"),
                _label(DpMechanism, p.required_mechanism) or gettext("any that adds noise"),
            ),
            (gettext("Accountant"), "Flower RDP accountant (flwr.supercore.privacy_accounting)"),
        ]
    )
    if not p.rounds:
        yield Paragraph(
            gettext("No round has released an aggregate yet: no ε is spent."), S["body"]
        )
    else:
        yield Spacer(1, 2 * mm)
        yield data_table(
            [
                gettext("round"),
                gettext("mechanism"),
                gettext("sites"),
                gettext("noise σ"),
                gettext("cumulative ε"),
                gettext("aggregate: before → after"),
            ],
            [
                [
                    r.number,
                    _label(DpMechanism, r.mechanism),
                    f"{number(r.sampled_clients)}/{number(r.total_clients)}",
                    number(r.noise_std, significant=4) if r.noise_std is not None else "—",
                    number(r.epsilon, 4)
                    if r.private and r.epsilon is not None
                    else gettext("unbounded (no noise)"),
                    f"{_short(r.aggregate_hash_before_noise or '—')} → {_short(r.aggregate_hash)}",
                ]
                for r in p.rounds
            ],
            # "round" needs 14 mm at the header's size, or it breaks as "roun / d".
            [w * mm for w in (14, 24, 14, 18, 30)] + [BODY_W - 100 * mm],
            mono=(5,),
        )
        yield epsilon_chart(
            [r.number for r in p.rounds],
            [r.epsilon if r.private else None for r in p.rounds],
            p.limit,
        )
    yield from _site_refusals(p.refusals)


def _site_refusals(refusals) -> Iterator[Flowable]:
    """Sites that refused a ticket under their own limits (ε, mechanism, local policy)."""
    if refusals:
        yield Paragraph(gettext("Sites that refused a ticket under their own limits:"), S["body"])
        yield data_table(
            [
                gettext("round"),
                gettext("site"),
                gettext("node"),
                gettext("code"),
                gettext("reason"),
            ],
            [[r.number, _ident(r.site_id), r.node_id, r.code, r.reason] for r in refusals],
            [w * mm for w in (14, 12, 30, 30)] + [BODY_W - 86 * mm],
        )


def _legal(header: RunHeader) -> Iterator[Flowable]:
    yield PageBreak()
    yield Heading(gettext("Run %(name)s: legal frame") % {"name": header.name}, 1)
    yield Paragraph(gettext("Controllers and agreements"), S["h3"])
    yield data_table(
        [
            gettext("Site"),
            gettext("Organisation"),
            gettext("Country"),
            gettext("Agreement"),
            gettext("Agreement SHA-256"),
        ],
        [
            [
                c.site_slug,
                c.organisation,
                c.country,
                role_label(c.agreement_type),
                _short(c.agreement_document_hash, 24),
            ]
            for c in header.controllers
        ],
        [25 * mm, 55 * mm, 16 * mm, 30 * mm, BODY_W - 126 * mm],
    )
    yield Paragraph(gettext("Datasets, lawful bases and Art. 9 conditions"), S["h3"])
    yield data_table(
        [
            gettext("Site"),
            gettext("Dataset"),
            gettext("Lawful basis"),
            gettext("Special category"),
            gettext("Art. 9"),
            pgettext("dataset retention date", "Retention"),
            gettext("Processing"),
        ],
        [
            [
                d.site_slug,
                d.name,
                f"Art. {d.lawful_basis}",
                d.special_category,
                f"Art. {d.art9_condition}" if d.art9_condition else "—",
                d.retention_until,
                ", ".join(d.processing_countries),
            ]
            for d in header.datasets
        ],
        [20 * mm, 28 * mm, 29 * mm, 22 * mm, 14 * mm, 29 * mm, BODY_W - 142 * mm],
    )
    yield Paragraph(gettext("Impact assessment and policy"), S["h3"])
    dpia = header.dpia
    policy = header.policy
    yield _facts_box(
        [
            (
                gettext("DPIA (Art. 35)"),
                (
                    f"{dpia.reference}: {_in_sentence(_label(DpiaStatus, dpia.status))}"
                    if dpia
                    else pgettext("report facts", "none recorded")
                ),
            ),
            (gettext("DPIA document SHA-256"), dpia.document_hash if dpia else None),
            (
                gettext("DPIA approved / valid until"),
                f"{_fmt(dpia.approved_at)} / {_fmt(dpia.valid_until)}" if dpia else None,
            ),
            (
                gettext("Policy"),
                gettext("%(name)s version %(version)s (%(status)s)")
                % {
                    "name": policy.name,
                    "version": policy.version,
                    "status": _in_sentence(_label(PolicyStatus, policy.status)),
                },
            ),
            (gettext("Policy content SHA-256"), policy.content_hash),
            (pgettext("policy publication date", "Published"), policy.published_at),
            (gettext("Minimum eligible sites"), policy.min_eligible_sites),
            (gettext("Human approval required"), policy.requires_approval),
        ]
    )
    yield Paragraph(gettext("Transfer legs as the latest gate checked them (Chapter V)"), S["h3"])
    yield data_table(
        [
            gettext("Site"),
            gettext("What, to whom"),
            gettext("Importer"),
            gettext("Transfer?"),
            gettext("Ground (gate's words)"),
        ],
        [
            [
                f"{t.site_slug} ({t.site_country})",
                leg_data(t),
                f"{leg_importer(t)} ({t.importer_country or '?'})",
                (gettext("third country") if t.third_country else gettext("no"))
                + ("" if t.ok else gettext(", REFUSED")),
                leg_ground(t.reason, t.ground),
            ]
            for t in header.transfers
        ]
        or [["—", gettext("no gate decision yet"), "", "", ""]],
        [28 * mm, 32 * mm, 32 * mm, 28 * mm, BODY_W - 120 * mm],
    )


def _rule_grid(facts: RoundFacts) -> list[Flowable]:
    rule_ids: list[str] = []
    articles: dict[str, str] = {}
    for r in facts.rules:
        if r.rule_id not in articles:
            rule_ids.append(r.rule_id)
            articles[r.rule_id] = article_text(r.article)
    sites = list(dict.fromkeys(r.site_slug for r in facts.rules if r.site_slug))
    verdict = {(r.site_slug, r.rule_id): r.ok for r in facts.rules}
    out: list[Flowable] = []
    if sites:
        site_rules = [rid for rid in rule_ids if any((s, rid) in verdict for s in sites)]
        first_w = 30 * mm
        cell_w = min(16 * mm, (BODY_W - first_w) / max(1, len(site_rules)))
        # Break rule ids at their hyphens, not mid-word, in the narrow grid columns.
        header = [P(gettext("Site"), "cellhead")] + [
            Paragraph(escape(rid).replace("-", "-<br/>"), S["grid"]) for rid in site_rules
        ]
        rows = [header]
        style = [
            ("BACKGROUND", (0, 0), (0, 0), ACCENT),
            ("BACKGROUND", (1, 0), (-1, 0), STRIPE),
            ("GRID", (0, 0), (-1, -1), 0.25, RULE),
            ("FONTNAME", (1, 1), (-1, -1), fonts.SANS),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("FONTSIZE", (1, 1), (-1, -1), 7),
            ("ALIGN", (1, 1), (-1, -1), "CENTER"),
            ("LEFTPADDING", (1, 0), (-1, 0), 1),
            ("RIGHTPADDING", (1, 0), (-1, 0), 1),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ]
        for y, site in enumerate(sites, start=1):
            row: list[Any] = [P(site)]
            for x, rid in enumerate(site_rules, start=1):
                ok = verdict.get((site, rid))
                row.append("" if ok is None else (gettext("pass") if ok else gettext("FAIL")))
                if ok is not None:
                    style += [
                        ("BACKGROUND", (x, y), (x, y), PASS_BG if ok else FAIL_BG),
                        ("TEXTCOLOR", (x, y), (x, y), PASS_FG if ok else FAIL_FG),
                    ]
            rows.append(row)
        grid = LongTable(
            rows, colWidths=[first_w] + [cell_w] * len(site_rules), repeatRows=1, hAlign="LEFT"
        )
        grid.setStyle(TableStyle(style))
        out.append(grid)
        out.append(
            Paragraph(
                gettext("Rules and articles: ")
                + "; ".join(f"<b>{escape(r)}</b> {escape(articles[r])}" for r in site_rules),
                S["small"],
            )
        )
    round_rules = [r for r in facts.rules if not r.site_slug]
    failures = [r for r in facts.rules if r.site_slug and not r.ok]
    if round_rules or failures:
        out.append(
            data_table(
                [
                    gettext("Site"),
                    gettext("Rule"),
                    gettext("Article"),
                    gettext("Verdict"),
                    gettext("Reason"),
                ],
                [
                    [
                        r.site_slug or gettext("(whole round)"),
                        r.rule_id,
                        article_text(r.article),
                        P(gettext("pass") if r.ok else gettext("FAIL")),
                        reason_text(r.code, r.params, r.reason),
                    ]
                    for r in itertools.chain(round_rules, failures)
                ],
                [24 * mm, 30 * mm, 26 * mm, 15 * mm, BODY_W - 95 * mm],
                long=True,
            )
        )
    return out


# The words a round heading uses, marked for the catalogue (reports/locale).
_OUTCOME_WORDS = (gettext_noop("not gated"), gettext_noop("allowed"), gettext_noop("blocked"))
# A round's state inside its heading, lower-case. The context keeps these apart from the
# same English words elsewhere: a round is feminine in Spanish and Polish ("cerrada",
# "zamknięta"), which the dashboard's "closed" is not.
_ROUND_STATE_WORDS = {
    "planned": pgettext_lazy("round state", "planned"),
    "gated": pgettext_lazy("round state", "gated"),
    "blocked": pgettext_lazy("round state", "blocked"),
    "awaiting_approval": pgettext_lazy("round state", "awaiting approval"),
    "approved": pgettext_lazy("round state", "approved"),
    "rejected": pgettext_lazy("round state", "rejected"),
    "provisioning": pgettext_lazy("round state", "provisioning"),
    "placement_verified": pgettext_lazy("round state", "placement verified"),
    "running": pgettext_lazy("round state", "running"),
    "aggregated": pgettext_lazy("round state", "aggregated"),
    "closed": pgettext_lazy("round state", "closed"),
    "failed": pgettext_lazy("round state", "failed"),
    "aborted": pgettext_lazy("round state", "aborted"),
}


def _round(facts: RoundFacts, placed_since: int | None) -> Iterator[Flowable]:
    """One round's section; ``placed_since`` names the earlier round whose placement table
    already shows these very workloads (they are per run), so it is not repeated."""
    outcome = gettext(facts.gate_outcome or "not gated")
    yield CondPageBreak(60 * mm)
    title = gettext("Round %(number)s: %(outcome)s, %(state)s") % {
        "number": facts.number,
        "outcome": outcome,
        "state": str(_ROUND_STATE_WORDS.get(facts.state, facts.state)),
    }
    yield Heading(title, 1)
    yield _facts_box(
        [
            (gettext("Gate evaluated"), facts.gate_at),
            (
                gettext("Outcome and reason"),
                reason_text(facts.gate_reason_code, facts.gate_reason_params, facts.gate_reason)
                or outcome,
            ),
            (gettext("Inputs snapshot SHA-256"), facts.snapshot_hash),
            (
                gettext("Round state"),
                # A dash, not a full stop: a reason starts in lower case in every
                # language ("Awaiting approval — policy P v1 requires human approval").
                " — ".join(
                    part
                    for part in (
                        _label(RoundState, facts.state),
                        reason_text(
                            facts.state_reason_code, facts.state_reason_params, facts.state_reason
                        ),
                    )
                    if part
                ),
            ),
            (gettext("Aggregate SHA-256"), facts.aggregate_hash),
            (
                gettext("Model accuracy"),
                number(facts.accuracy, 4) if facts.accuracy is not None else None,
            ),
        ]
    )
    if facts.rules:
        yield Paragraph(gettext("Gate outcome per site and rule"), S["h3"])
        yield from _rule_grid(facts)
    yield Paragraph(gettext("Approvals"), S["h3"])
    if facts.approvals:
        yield data_table(
            [
                gettext("Decision"),
                gettext("By"),
                gettext("At"),
                gettext("Expires"),
                gettext("Reason"),
            ],
            [
                [_label(ApprovalDecision, a.decision), a.approver, a.at, a.expires_at, a.reason]
                for a in facts.approvals
            ],
            [18 * mm, 28 * mm, 32 * mm, 32 * mm, BODY_W - 110 * mm],
        )
    else:
        yield Paragraph(gettext("No approval was recorded for this round."), S["small"])
    if facts.placements and placed_since is not None:
        yield Paragraph(
            gettext("Where training ran: the same OpenNebula workloads as in round %(number)s.")
            % {"number": placed_since},
            S["small"],
        )
    elif facts.placements:
        yield Paragraph(gettext("Where training ran (OpenNebula placement)"), S["h3"])
        yield data_table(
            [
                gettext("Site"),
                gettext("Zone"),
                gettext("VM"),
                gettext("Host"),
                gettext("Host country"),
                gettext("Cluster / datastore"),
                gettext("State"),
            ],
            [
                [
                    p.site_slug,
                    _ident(p.zone_id),
                    _ident(p.vm_id),
                    p.host,
                    p.host_country,
                    f"{p.cluster_country or '—'} / {p.datastore_country or '—'}",
                    _label(WorkloadState, p.state),
                ]
                for p in facts.placements
            ],
            [26 * mm, 14 * mm, 14 * mm, 40 * mm, 20 * mm, 30 * mm, BODY_W - 144 * mm],
            long=True,
        )
    if facts.records or facts.updates:
        yield Paragraph(gettext("Records and model updates"), S["h3"])
        hashes = {u.site_slug: u for u in facts.updates if u.accepted}
        yield data_table(
            [
                gettext("Site"),
                gettext("Eligible"),
                gettext("Subjects with valid consent"),
                gettext("Declared records (other lawful bases)"),
                gettext("Records used"),
                gettext("Subjects excluded"),
                gettext("Update SHA-256"),
            ],
            [
                [
                    r.site_slug,
                    r.eligible,
                    r.eligible_subjects,
                    r.declared_records,
                    r.records_used,
                    r.excluded_subjects,
                    Mono(hashes[r.site_slug].update_hash if r.site_slug in hashes else "—"),
                ]
                for r in facts.records
            ],
            [24 * mm, 15 * mm, 17 * mm, 19 * mm, 13 * mm, 17 * mm, BODY_W - 105 * mm],
            long=True,
            mono=(6,),
        )
        refused = [u for u in facts.updates if not u.accepted]
        if refused:
            yield data_table(
                [gettext("Refused node"), gettext("Update SHA-256"), gettext("Why")],
                [
                    [u.node_id, Paragraph(u.update_hash, S["mono"]), u.rejection_reason]
                    for u in refused
                ],
                [26 * mm, 80 * mm, BODY_W - 106 * mm],
            )
    if facts.consent:
        yield Paragraph(gettext("Consent at the round's instant (counts only)"), S["h3"])
        yield data_table(
            [
                gettext("Dataset"),
                pgettext("consent count", "Granted"),
                pgettext("consent count", "Withdrawn"),
                pgettext("consent count", "Expired"),
            ],
            [[c.dataset, c.granted, c.withdrawn, c.expired] for c in facts.consent],
            [BODY_W - 66 * mm, 22 * mm, 22 * mm, 22 * mm],
            long=True,
        )
    if facts.ledger_seqs:
        yield Paragraph(
            gettext("Ledger events cited: %(seqs)s (inclusion proofs in the appendix).")
            % {"seqs": ", ".join(f"#{s}" for s in facts.ledger_seqs)},
            S["small"],
        )


def _appendix(doc: ReportInput) -> Iterator[Flowable]:
    anchor = doc.anchor
    yield PageBreak()
    yield Heading(gettext("Appendix: ledger anchor and inclusion proofs"), 0)
    yield Paragraph(
        gettext(
            "Every event this report cites is a leaf of fedgov's append-only ledger, an "
            "RFC 9162 Merkle tree. The checkpoint below is signed with Ed25519 in the C2SP "
            "signed-note format. For each cited event the audit path leads from its leaf hash "
            "to the checkpoint's root; anyone can recompute it (RFC 9162, section 2.1.3.2). "
            "Hashes are base64."
        ),
        S["body"],
    )
    yield _facts_box(
        [
            (gettext("Tree size"), str(anchor.size)),
            (gettext("Root (base64)"), base64.b64encode(anchor.root).decode()),
            (gettext("Signing key id"), anchor.key_id),
            (gettext("Signed at"), anchor.created_at),
        ]
    )
    yield Paragraph(gettext("Signed checkpoint"), S["h3"])
    yield Paragraph(escape(anchor.note).replace("\n", "<br/>"), S["mono"])
    yield from _witnessing(anchor)
    yield from _trusted_time(anchor)
    yield Paragraph(gettext("Cited events"), S["h3"])
    cited = sorted(set(doc.cited))
    if not cited:
        yield Paragraph(gettext("This report cites no ledger event."), S["small"])
        return
    batch: list[list[Any]] = []
    for proof in doc.proofs(cited):
        hashes = [base64.b64encode(h).decode() for h in proof.path]
        # Two hashes a line: plain multi-line strings lay out far faster than Paragraphs.
        path = "\n".join(" ".join(hashes[i : i + 2]) for i in range(0, len(hashes), 2))
        leaf = base64.b64encode(proof.leaf_hash).decode()
        batch.append(
            [
                str(proof.seq),
                Mono(f"{proof.event_type}\n{proof.subject}"),
                Mono(f"{leaf[:22]}\n{leaf[22:]}"),
                Mono(path or gettext("(the leaf is the root)")),
            ]
        )
        if len(batch) == 200:
            yield _proof_table(batch)
            batch = []
    if batch:
        yield _proof_table(batch)


def _witnessing(anchor: Anchor) -> Iterator[Flowable]:
    yield Paragraph(gettext("Witness cosignatures"), S["h3"])
    if not anchor.cosignatures:
        yield Paragraph(
            gettext(
                "No witness has cosigned this checkpoint yet (no witness policy, or the "
                "witnesses were unreachable when the report was made; witnessing is retried "
                "with the next checkpoint and does not block the ledger)."
            ),
            S["small"],
        )
        return
    yield Paragraph(
        gettext(
            "Independent witnesses, run by the sites or third parties with their own keys, "
            "checked that this checkpoint extends what they saw before (C2SP tlog-witness) "
            "and cosigned it (C2SP tlog-cosignature, <i>cosignature/v1</i>). Appended to the "
            "signed checkpoint above, these lines make a note any C2SP client checks with the "
            "witnesses' verifier keys."
        ),
        S["body"],
    )
    rows = [
        [
            c.witness,
            Mono(c.key_id),
            c.time.strftime("%Y-%m-%d %H:%M:%S UTC"),
            str(c.size),
            # Broken every 56 characters: a signature line has no spaces to wrap at.
            Mono("\n".join(c.line[i : i + 56] for i in range(0, len(c.line), 56))),
        ]
        for c in anchor.cosignatures
    ]
    yield data_table(
        [
            gettext("Witness"),
            gettext("Key id"),
            gettext("Cosigned at"),
            gettext("Size"),
            gettext("Cosignature line"),
        ],
        rows,
        # The time column holds "YYYY-MM-DD HH:MM:SS UTC" on one line in the shipped font.
        [33 * mm, 21 * mm, 37 * mm, 11 * mm, BODY_W - 102 * mm],
        mono=(1, 4),
        mono_size=5.2,
    )


def _trusted_time(anchor: Anchor) -> Iterator[Flowable]:
    yield Paragraph(gettext("Trusted time (RFC 3161)"), S["h3"])
    stamp = anchor.timestamp
    if stamp is None:
        yield Paragraph(
            gettext(
                "<b>No trusted time.</b> No timestamp authority was configured or reachable "
                "when this checkpoint was signed: its time is fedgov's own clock, which its "
                "operator controls."
            ),
            S["small"],
        )
        return
    yield Paragraph(
        gettext(
            "A timestamp authority dated the signed checkpoint note: its RFC 3161 token's "
            "message imprint is the SHA-256 of the note above. The token is in the evidence "
            "bundle (checkpoints.json) and checks against the TSA certificate shipped there."
        ),
        S["body"],
    )
    yield _facts_box(
        [
            (gettext("Time stamped"), stamp.gen_time.strftime("%Y-%m-%d %H:%M:%S UTC")),
            (gettext("Authority"), stamp.tsa),
            (gettext("Token serial"), stamp.serial),
            (gettext("Token SHA-256"), stamp.token_sha256),
        ]
    )


def _proof_table(rows: list[list[Any]]) -> LongTable:
    return data_table(
        [gettext("Seq"), gettext("Event"), gettext("Leaf hash"), gettext("Audit path")],
        rows,
        [11 * mm, 36 * mm, 26 * mm, BODY_W - 73 * mm],
        long=True,
        mono=(2, 3),
        mono_size=5.2,
    )


def story(doc: ReportInput) -> Iterator[Flowable]:
    """Yield the report's flowables in order, pulling rounds only as they are laid out."""
    sections = list(doc.sections)
    yield from _cover(doc, [s.header for s in sections])
    for section in sections:
        header = section.header
        doc.cited.extend(header.ledger_seqs)
        yield from _summary(header, section.series)
        yield from _privacy(header)
        yield from _legal(header)
        yield PageBreak()
        yield Heading(gettext("Run %(name)s: rounds") % {"name": header.name}, 0)
        shown: tuple | None = None
        shown_in: int | None = None
        for facts in section.rounds:
            doc.on_round(facts)
            doc.cited.extend(facts.ledger_seqs)
            yield Spacer(1, 2 * mm)
            same = facts.placements == shown
            yield from _round(facts, shown_in if same else None)
            if not same:
                shown, shown_in = facts.placements, facts.number
    yield from _appendix(doc)


class StreamingCanvas(Canvas):
    """A canvas that compresses each page as it closes.

    reportlab keeps every page's content stream as uncompressed text until ``save``;
    at 500 rounds × 50 sites that alone passes 400 MB. Flate-compressing on ``showPage``
    (the same filter reportlab would apply at save) keeps about a tenth of it.
    """

    def showPage(self) -> None:
        super().showPage()
        page = self._doc.Pages.pages[-1]
        stream = page.stream
        if stream and not page.Contents:
            data = stream.encode("utf-8") if isinstance(stream, str) else stream
            page.Contents = pdfdoc.PDFStream(
                dictionary=pdfdoc.PDFDictionary(
                    {"Filter": pdfdoc.PDFArray([pdfdoc.PDFName("FlateDecode")])}
                ),
                content=zlib.compress(data),
            )
            page.stream = None


class _ReportTemplate(BaseDocTemplate):
    def __init__(self, out, doc: ReportInput) -> None:
        super().__init__(
            out,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN + 4 * mm,
            bottomMargin=MARGIN,
            title=str(doc.title),
            author=doc.organisation,
            subject=f"fedgov audit report {doc.report_id}",
            creator="fedgov",
            pageCompression=1,
            invariant=1,
        )
        self.report = doc
        frame = Frame(MARGIN, MARGIN, BODY_W, PAGE_H - 2 * MARGIN - 4 * mm, id="body")
        self.addPageTemplates(
            [
                PageTemplate(id="cover", frames=[frame], onPage=self._cover_page),
                PageTemplate(id="body", frames=[frame], onPage=self._body_page),
            ]
        )

    def afterFlowable(self, flowable) -> None:
        level = getattr(flowable, "toc_level", None)
        if level is not None:
            # One outline entry per heading: a single layout pass (rounds stream), so no
            # printed table of contents with page numbers.
            self._outline_n = getattr(self, "_outline_n", 0) + 1
            key = f"h{self._outline_n}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(flowable.toc_text, key, level=level, closed=level > 0)

    def _cover_page(self, canvas, _doc) -> None:
        canvas.saveState()
        canvas.setFillColor(ACCENT)
        canvas.rect(0, PAGE_H - 14 * mm, PAGE_W, 14 * mm, stroke=0, fill=1)
        canvas.setFillColor(colors.white)
        canvas.setFont(fonts.SANS_BOLD, 10)
        canvas.drawString(
            MARGIN, PAGE_H - 9 * mm, gettext("fedgov · federated learning governance")
        )
        canvas.restoreState()

    def _body_page(self, canvas, _doc) -> None:
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, PAGE_H - MARGIN + 1 * mm, PAGE_W - MARGIN, PAGE_H - MARGIN + 1 * mm)
        canvas.setFont(fonts.SANS, 7.5)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN, PAGE_H - MARGIN + 2.5 * mm, str(self.report.title))
        canvas.drawRightString(
            PAGE_W - MARGIN,
            PAGE_H - MARGIN + 2.5 * mm,
            gettext("report %(id)s") % {"id": self.report.report_id},
        )
        canvas.drawString(
            MARGIN,
            MARGIN - 7 * mm,
            gettext("Anchored to ledger checkpoint %(size)s") % {"size": self.report.anchor.size},
        )
        canvas.drawRightString(
            PAGE_W - MARGIN,
            MARGIN - 7 * mm,
            gettext("page %(number)s") % {"number": canvas.getPageNumber()},
        )
        canvas.restoreState()


def render(doc: ReportInput, out: IO[bytes] | str) -> None:
    """Write the PDF to ``out`` in one layout pass over ``doc``'s (possibly lazy) data."""
    template = _ReportTemplate(out, doc)
    template.build(LazyStory(story(doc)), canvasmaker=StreamingCanvas)

"""Consent CSV files from a site's own tools: comma or semicolon, errors by CSV line.

Spreadsheets in much of the EEA (de, es, fr, pl locales) save "CSV" with semicolons
because the comma is their decimal mark, so both separators are accepted. The separator
is taken from the header line: it is the one that splits the header into fedgov's
column names, which is stricter than guessing from the data (csv.Sniffer can pick a
character that happens to be in pseudonyms or dates).

Errors are for the person uploading, in their language, with line numbers and counts as
they write numbers (``fedgov.numbers``); the column names stay as the file must spell
them. The parser runs inside the request, so its messages are translated eagerly.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from fedgov.errors import InvalidInput
from fedgov.numbers import number

COLUMNS = ("subject_pseudonym", "purpose", "kind", "occurred_at", "expires_at")
REQUIRED = COLUMNS[:4]
DELIMITERS = (",", ";")
MAX_REPORTED = 50


@dataclass(frozen=True)
class ParsedCsv:
    events: list[dict]
    lines: list[int]  # the CSV line each event came from: consent_record_batch(lines=)
    delimiter: str


def header_delimiter(header_line: str) -> str | None:
    """The one separator that splits ``header_line`` into fedgov's column names, or None
    when neither or both do. The API's ``text/csv`` parser uses it too."""
    fits = []
    for delimiter in DELIMITERS:
        names = [name.strip() for name in next(csv.reader([header_line], delimiter=delimiter))]
        if set(REQUIRED) <= set(names) and set(names) <= set(COLUMNS):
            fits.append(delimiter)
    return fits[0] if len(fits) == 1 else None


def _detect_delimiter(header_line: str) -> str:
    delimiter = header_delimiter(header_line)
    if delimiter is None:
        raise InvalidInput(
            {
                "file": [
                    _(
                        "line 1: the header must name {columns} (and optionally expires_at), "
                        "separated by commas or by semicolons"
                    ).format(columns=", ".join(REQUIRED))
                ]
            }
        )
    return delimiter


def parse_consent_csv(data: bytes, *, max_bytes: int) -> ParsedCsv:
    """Parse an upload into consent events; raise InvalidInput naming the CSV line.

    ``max_bytes`` is checked first, before any decoding or parsing, so an oversized file
    costs nothing but its length.
    """
    if len(data) > max_bytes:
        raise InvalidInput({"file": [too_large(len(data), max_bytes)]})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            {"file": [_("line {line}: the file must be UTF-8 encoded").format(line=number(line))]}
        ) from exc
    if not text.strip():
        raise InvalidInput({"file": [_("the file is empty")]})
    header_line = text.splitlines()[0]
    delimiter = _detect_delimiter(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    errors: list[str] = []
    events: list[dict] = []
    lines: list[int] = []
    try:
        header = [name.strip() for name in next(reader)]
        for cells in reader:
            line = reader.line_num
            if not cells or all(not cell.strip() for cell in cells):
                continue  # blank lines, e.g. a trailing one from a spreadsheet
            if len(cells) != len(header):
                errors.append(
                    ngettext(
                        "line {line}: {cells} cell, the header has {header}",
                        "line {line}: {cells} cells, the header has {header}",
                        len(cells),
                    ).format(
                        line=number(line), cells=number(len(cells)), header=number(len(header))
                    )
                )
                continue
            row = {name: (cell.strip() or None) for name, cell in zip(header, cells, strict=True)}
            missing = [name for name in REQUIRED if not row.get(name)]
            if missing:
                errors.append(
                    _("line {line}: empty {columns}").format(
                        line=number(line), columns=", ".join(missing)
                    )
                )
                continue
            events.append(row)
            lines.append(line)
    except csv.Error as exc:
        # csv's own message (e.g. "unexpected end of data") has no translation of its own.
        errors.append(_("line {line}: {error}").format(line=number(reader.line_num), error=exc))
    if errors:
        shown = errors[:MAX_REPORTED]
        more = len(errors) - len(shown)
        if more:
            shown.append(
                ngettext("… and {count} more", "… and {count} more", more).format(
                    count=number(more)
                )
            )
        raise InvalidInput({"file": shown})
    if not events:
        raise InvalidInput({"file": [_("the file has a header but no events")]})
    return ParsedCsv(events, lines, delimiter)


def too_large(size: int, limit: int) -> str:
    """The refusal of an upload of ``size`` bytes over ``limit``, in the reader's words."""
    return ngettext(
        "the file is {size} byte; the limit is {limit}",
        "the file is {size} bytes; the limit is {limit}",
        size,
    ).format(size=number(size), limit=number(limit))


def row_errors_by_line(exc: InvalidInput) -> list[str]:
    """The service's per-row refusals as "line N: field: reason".

    The service keys them by CSV line already (``consent_record_batch(lines=...)``), so
    these and its summary ("first: line N") name a row the same way.
    """
    rows = exc.errors.get("events")
    if not isinstance(rows, dict):
        return [str(exc)]
    messages = []
    for line, fields in rows.items():
        for field, reasons in fields.items():
            for reason in reasons if isinstance(reasons, list) else [reasons]:
                messages.append(
                    _("line {line}: {field}: {reason}").format(
                        line=number(int(line)) if str(line).isdigit() else line,
                        field=field,
                        reason=reason,
                    )
                )
    return messages

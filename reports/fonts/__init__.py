"""The report fonts, registered with reportlab once, by name.

Reports name these constants, never a standard PDF font: the 14 standard fonts carry only
a Latin-1 repertoire, so a Polish site name ("Sąd Okręgowy w Łodzi") would print with
missing glyphs. The TrueType files ship in this folder (see README.md for their licence).
"""

from __future__ import annotations

from pathlib import Path

from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FONT_DIR = Path(__file__).resolve().parent

SANS = "FedgovSans"
SANS_BOLD = "FedgovSans-Bold"
SANS_ITALIC = "FedgovSans-Italic"
SANS_BOLD_ITALIC = "FedgovSans-BoldItalic"
MONO = "FedgovMono"
MONO_BOLD = "FedgovMono-Bold"

_FILES = {
    SANS: "DejaVuSansCondensed.ttf",
    SANS_BOLD: "DejaVuSansCondensed-Bold.ttf",
    SANS_ITALIC: "DejaVuSansCondensed-Oblique.ttf",
    SANS_BOLD_ITALIC: "DejaVuSansCondensed-BoldOblique.ttf",
    MONO: "DejaVuSansMono.ttf",
    MONO_BOLD: "DejaVuSansMono-Bold.ttf",
}

# What each of reportlab's standard names becomes, for styles that inherit one.
STANDARD_TO_SHIPPED = {
    "Helvetica": SANS,
    "Helvetica-Bold": SANS_BOLD,
    "Helvetica-Oblique": SANS_ITALIC,
    "Helvetica-BoldOblique": SANS_BOLD_ITALIC,
    "Times-Roman": SANS,
    "Times-Bold": SANS_BOLD,
    "Times-Italic": SANS_ITALIC,
    "Times-BoldItalic": SANS_BOLD_ITALIC,
    "Courier": MONO,
    "Courier-Bold": MONO_BOLD,
}


def register() -> None:
    """Register the shipped fonts and their bold/italic mapping (idempotent)."""
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, filename in _FILES.items():
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / filename)))
    # <b> and <i> inside a Paragraph pick the face through these mappings.
    addMapping(SANS, 0, 0, SANS)
    addMapping(SANS, 1, 0, SANS_BOLD)
    addMapping(SANS, 0, 1, SANS_ITALIC)
    addMapping(SANS, 1, 1, SANS_BOLD_ITALIC)
    addMapping(MONO, 0, 0, MONO)
    addMapping(MONO, 1, 0, MONO_BOLD)
    addMapping(MONO, 0, 1, MONO)
    addMapping(MONO, 1, 1, MONO_BOLD)


register()

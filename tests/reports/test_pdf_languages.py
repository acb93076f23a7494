"""Every letter of fedgov's five languages prints in the report, on a fresh machine.

The fonts ship in ``reports/fonts``; the standard PDF fonts would drop ł, ą, œ and the
rest. The text is taken back out of the PDF and compared, so a missing glyph (which
extracts as nothing, or as a replacement) fails the test.
"""

from __future__ import annotations

import pytest
from reportlab.pdfbase import pdfmetrics

from reports import fonts
from sites.models import Site
from tests.reports.test_pdf import build_pdf, pdf_text
from training.models import TrainingRun

# One name per language, each with that language's own letters (and the capitals).
NAMES = {
    "pl": "Sąd Okręgowy w Łodzi: źdźbło, żółć, gęś, ŻÓŁĆ",
    "de": "Landgericht Köln: Größe, Übermittlung, Äußerung",
    "es": "Editorial Española: año, señal, corresponsables, Ñandú",
    "fr": "Éditions Cœur: élève, forêt, garçon, sœur, Œuvre",
}


@pytest.mark.django_db
def test_every_language_prints_its_letters(played_run, tmp_path):
    run, sites, *_ = played_run
    TrainingRun.objects.filter(pk=run.pk).update(name=NAMES["pl"])
    for site, name in zip(sites, [NAMES["de"], NAMES["es"], NAMES["fr"]], strict=False):
        Site.objects.filter(pk=site.pk).update(organisation=name)
    run.refresh_from_db()
    out = tmp_path / "report.pdf"

    build_pdf(run, out)

    text = "".join(pdf_text(out).split())
    shown = [name for name in NAMES.values() if "".join(name.split()) in text]
    assert len(shown) >= 1 + min(len(sites), 3), (shown, text[:400])
    for letter in "ąęłńśźżćóĄĘŁŃŚŹŻÄÖÜäöüßñÑéèêçœŒ":
        if any(letter in name for name in shown):
            assert letter in text, letter


def test_the_shipped_fonts_cover_all_five_alphabets():
    alphabet = "".join(NAMES.values()) + "ÀÂÆÇÈÉÊËÎÏÔÙÛÜŸàâæçèéêëîïôùûüÿ¿¡«»„“”–—€"
    for name in (fonts.SANS, fonts.SANS_BOLD, fonts.SANS_ITALIC, fonts.MONO):
        face = pdfmetrics.getFont(name).face
        missing = [ch for ch in alphabet if ord(ch) not in face.charToGlyph]
        assert not missing, (name, missing)


def test_the_standard_font_would_not_do():
    # Why the fonts ship at all: the PDF's built-in Helvetica has no ł.
    helvetica = pdfmetrics.getFont("Helvetica")
    assert "ł" not in "".join(helvetica.encoding.vector[i] or "" for i in range(256))

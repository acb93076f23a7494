"""Free text reaches the PDF as typed: reportlab markup in a name is shown, not obeyed."""

from __future__ import annotations

import pytest

from sites.models import Site
from tests.reports.test_pdf import build_pdf, pdf_text
from training.models import TrainingRun

# Each would change the PDF if reportlab read it as markup: a font change, a closing tag
# that breaks the paragraph (an exception), an entity, a link.
# Each carries a token that appears nowhere else in a report (not even by chance inside a
# base64 signature), so counting it finds every place the text is shown.
HOSTILE = [
    '<font color="red" size="40">QzBIGzQ</font>',
    "</para><para>QzSPLITzQ",
    "&amp; &lt;tag&gt; QzENTzQ&#65;",
    '<a href="http://example.invalid/">QzLINKzQ</a>',
]
TOKENS = ["QzBIGzQ", "QzSPLITzQ", "QzENTzQ&#65;", "QzLINKzQ"]


@pytest.mark.django_db
def test_markup_in_run_and_organisation_names_is_shown_literally(played_run, tmp_path):
    run, sites, *_ = played_run
    name = " · ".join(HOSTILE)
    TrainingRun.objects.filter(pk=run.pk).update(name=name[:200])
    Site.objects.filter(pk=sites[0].pk).update(organisation=HOSTILE[1] + " e.V.")
    run.refresh_from_db()
    out = tmp_path / "report.pdf"

    build_pdf(run, out)

    # Whitespace removed: a narrow table cell may break the text anywhere, mid-word too.
    text = "".join(pdf_text(out).split())
    # Every place that shows the text shows all of it: a token seen more often than the
    # whole means some heading or cell obeyed the markup instead of showing it.
    for needle, token in zip(HOSTILE, TOKENS, strict=True):
        whole = "".join(needle.split())
        assert text.count(whole) >= 1, needle
        assert text.count(token) == text.count(whole), needle
    assert "</para><para>QzSPLITzQe.V." in text

"""Free text reaches the PDF as typed: reportlab markup in a name is shown, not obeyed."""

from __future__ import annotations

import pytest

from sites.models import Site
from tests.audit.reports.test_pdf import build_pdf, pdf_text
from training.models import TrainingRun

# Each would change the PDF if reportlab read it as markup: a font change, a closing tag
# that breaks the paragraph (an exception), an entity, a link.
HOSTILE = [
    '<font color="red" size="40">BIG</font>',
    "</para><para>split",
    "&amp; &lt;tag&gt; &#65;",
    '<a href="http://example.invalid/">link</a>',
]


@pytest.mark.django_db
def test_markup_in_run_and_organisation_names_is_shown_literally(played_run, tmp_path):
    run, sites, *_ = played_run
    name = " · ".join(HOSTILE)
    TrainingRun.objects.filter(pk=run.pk).update(name=name[:200])
    Site.objects.filter(pk=sites[0].pk).update(organisation=HOSTILE[1] + " e.V.")
    run.refresh_from_db()
    out = tmp_path / "report.pdf"

    build_pdf(run, out)

    text = " ".join(pdf_text(out).split())
    # Every place that shows the text shows all of it: an inner word seen more often than
    # the whole means some heading or cell obeyed the markup instead of showing it.
    for needle, inner in zip(HOSTILE, ["BIG", "split", "&#65;", "link"], strict=True):
        assert text.count(needle) >= 1, needle
        assert text.count(inner) == text.count(needle), needle
    assert "</para><para>split e.V." in text

"""Spanish names a site as docs/glossary.md does: "sede", never "sitio" (issue 19)."""

from __future__ import annotations

import re

import polib

from fedgov import catalogue

# Django's "Django site admin" means a web site, not a participant of the federation.
WEB_SITE = {"Django site admin"}


def test_spanish_catalogues_call_a_site_sede_as_the_glossary_does():
    glossary = (catalogue.ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    assert re.search(r"^\| site \| site \| Standort \| sede \|", glossary, re.M)
    found = []
    for locale_dir in catalogue.catalogue_dirs():
        for path in catalogue.po_files(locale_dir):
            if "/es/" not in str(path):
                continue
            for entry in polib.pofile(str(path)):
                texts = [entry.msgstr, *entry.msgstr_plural.values()]
                if entry.msgid not in WEB_SITE and any(
                    re.search(r"(?i)\bsitios?\b", t) for t in texts
                ):
                    found.append(f"{path}: {entry.msgid!r}")
    assert not found, "\n".join(found)

"""The catalogues use docs/glossary.md's words: Spanish "sede", never "sitio"; the gate
is never the English loanword "gate" (issue 19)."""

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


# What each language calls the gate (docs/glossary.md, fedgov's own words). Code names
# inside a sentence ("gate.decided", "round_gate") are identifiers, not the word.
GATE_ROW = (
    r"^\| gate \(the GDPR check before each round\) \| gate \| Prüfung \(Prüfentscheidung\) "
    r"\| control \| bramka \| contrôle \|"
)


def test_no_catalogue_calls_the_gate_by_its_english_name():
    glossary = (catalogue.ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    assert re.search(GATE_ROW, glossary, re.M)
    found = []
    for locale_dir in catalogue.catalogue_dirs():
        for path in catalogue.po_files(locale_dir):
            for entry in polib.pofile(str(path)):
                for text in [entry.msgstr, *entry.msgstr_plural.values()]:
                    words = re.sub(r"[\w.]*(gate[._]|[._]gate)[\w.]*", "", text, flags=re.I)
                    if re.search(r"(?i)\bgate\b", words):
                        found.append(f"{path}: {entry.msgid[:60]!r} -> {text[:80]!r}")
    assert not found, "\n".join(found)

"""CI's translation check (issue 19): what people read is marked, translated and compiled.

The first five tests hold the project to it; each later one plants the defect its check
exists for (an unmarked word, a missing msgstr, a stale .mo, ...) in a temporary tree
and shows the check fails on it. All of it is pure Python (fedgov.catalogue, polib):
a fresh machine has no GNU gettext. Where xgettext happens to be installed, one more
test shows the pure-Python extraction finds exactly what Django's makemessages finds.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import polib
import pytest
from django.core.management import call_command
from django.test import override_settings

from fedgov import catalogue
from fedgov.catalogue import ROOT


def _lines(findings) -> str:
    return "\n".join(str(f) for f in findings)


# --- the project -------------------------------------------------------------------------


def test_templates_show_no_text_outside_translate_tags():
    templates = catalogue.source_files(ROOT, (".html",))
    assert len(templates) > 10  # the walk reaches templates/ at all
    findings = [f for path in templates for f in catalogue.template_findings(path)]
    assert not findings, "mark with {% translate %} / {% blocktranslate %}:\n" + _lines(findings)


def test_python_strings_people_read_are_marked():
    modules = catalogue.python_files(ROOT)
    names = {str(p.relative_to(ROOT)) for p in modules}
    assert {"training/models.py", "sites/admin.py", "training/admin/rounds.py"} <= names
    assert "dashboard/forms.py" in names and "sites/choices.py" in names
    # The API's help texts and schema descriptions: the OpenAPI document people read.
    assert {"sites/serializers.py", "sites/api.py", "training/api/gate.py"} <= names
    assert {"reports/api.py", "audit/api.py", "fedgov/api_root.py"} <= names
    # reports/ files its strings in its own catalogue; they are checked like any other.
    assert {"reports/admin.py", "reports/models.py", "reports/apps.py"} <= names
    findings = [f for path in modules for f in catalogue.python_findings(path)]
    assert not findings, "wrap in gettext_lazy (_):\n" + _lines(findings)


def test_every_catalogue_is_translated_into_every_language():
    locale_dirs = catalogue.catalogue_dirs()
    assert ROOT / "locale" in locale_dirs
    findings = []
    for locale_dir in locale_dirs:
        domains = {p.stem for p in catalogue.po_files(locale_dir)}
        assert domains, f"{locale_dir} holds no catalogue"
        for domain in domains:
            findings += catalogue.language_findings(locale_dir, domain)
        for po_path in catalogue.po_files(locale_dir):
            findings += catalogue.po_findings(po_path)
    assert not findings, _lines(findings)


def test_committed_catalogues_hold_exactly_what_the_sources_mark():
    extracted = catalogue.extract_msgids()
    committed = catalogue.committed_msgids()
    assert len(extracted) > 300
    missing = sorted(m[1] for m in extracted - committed)
    obsolete = sorted(m[1] for m in committed - extracted)
    assert not missing, f"marked but in no catalogue (manage.py messages): {missing[:20]}"
    assert not obsolete, f"in a catalogue but no longer marked: {obsolete[:20]}"


def test_no_msgid_is_translated_two_ways_in_one_language():
    """The root catalogue's translation wins over an app's (issue 19, part 3)."""
    locale_dirs = catalogue.catalogue_dirs()
    assert {ROOT / "locale", ROOT / "reports" / "locale", ROOT / "training" / "locale"} <= set(
        locale_dirs
    )
    findings = catalogue.clash_findings(locale_dirs)
    assert not findings, _lines(findings)


def test_compiled_catalogues_match_their_po_files():
    po_paths = [p for d in catalogue.catalogue_dirs() for p in catalogue.po_files(d)]
    assert len(po_paths) >= 4
    findings = [f for p in po_paths for f in catalogue.mo_findings(p)]
    assert not findings, _lines(findings)


# --- (a) templates: planted defects ------------------------------------------------------


def _template(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "page.html"
    path.write_text("{% load i18n %}" + textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "body",
    [
        "<p>Approve now</p>",
        "<p>{% translate 'Round' %} of {{ total }}</p>",
        '<button title="Open the round">{% translate "Open" %}</button>',
        '<input type="submit" value="Release">',
        '<div aria-label="Filters"></div>',
        "{% if ok %}passed{% else %}{% translate 'failed' %}{% endif %}",
        "<td>{{ at|date:'H:i' }} UTC by {{ who }}</td>",
    ],
)
def test_template_check_finds_untranslated_text(tmp_path, body):
    assert catalogue.template_findings(_template(tmp_path, body))


@pytest.mark.parametrize(
    "body",
    [
        "<p>{% translate 'Approve now' %}</p>",
        "<p>{% blocktranslate with n=total %}Round of {{ n }}{% endblocktranslate %}</p>",
        "<p>{% blocktranslate count n=k %}{{ n }} site{% plural %}{{ n }} sites"
        "{% endblocktranslate %}</p>",
        "<button title=\"{% translate 'Open the round' %}\">→</button>",
        "<span>fedgov · {{ at|date:'Y-m-d H:i' }} UTC · 42 %</span>",
        "<code>subject_pseudonym,purpose</code><style>.a { width: 100%; }</style>",
        "{% comment %}Nobody reads this{% endcomment %}<!-- nor this -->",
        "<div class='card good'>{{ figure }}</div>",
    ],
)
def test_template_check_accepts_marked_text_and_non_words(tmp_path, body):
    assert catalogue.template_findings(_template(tmp_path, body)) == []


def test_template_findings_name_the_line(tmp_path):
    path = _template(tmp_path, "<p>{% translate 'ok' %}</p>\n<p>\n  Left in English\n</p>\n")
    (finding,) = catalogue.template_findings(path)
    assert finding.line in (2, 3) and "Left in English" in finding.text


# --- (b) Python: planted defects ---------------------------------------------------------


def _module(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("admin.py", '@admin.display(description="state")\ndef f(o): ...\n'),
        ("admin.py", '@admin.action(description="Suspend sites")\ndef f(m, r, q): ...\n'),
        ("admin.py", 'def f(self, r):\n    self.message_user(r, f"{x}: done")\n'),
        ("admin.py", 'def f(self, r):\n    self.message_user(r, "Done" + x)\n'),
        ("views.py", 'def f(r):\n    messages.success(r, "Ledger verified.")\n'),
        ("views.py", 'def f(r):\n    ctx = {"title": "Place a legal hold"}\n'),
        ("forms.py", 'class F(forms.Form):\n    a = forms.CharField(label="Reason")\n'),
        ("forms.py", 'def clean(self):\n    raise forms.ValidationError("Too late")\n'),
        ("forms.py", 'def clean(self):\n    self.add_error("a", "Too late")\n'),
        ("models.py", "class M(models.Model):\n    a = models.CharField(max_length=3)\n"),
        (
            "models.py",
            "class M(models.Model):\n"
            '    a = models.TextField(help_text="Why", verbose_name=_("a"))\n',
        ),
        ("models.py", 'class M(models.Model):\n    a = models.TextField(verbose_name=_("a"))\n'),
        ("choices.py", 'class S(models.TextChoices):\n    ACTIVE = "active", "Active"\n'),
        ("choices.py", 'class S(models.TextChoices):\n    ACTIVE = "active"\n'),
        ("admin.py", 'class F(admin.SimpleListFilter):\n    title = "state"\n'),
        (
            "admin.py",
            "class A(admin.ModelAdmin):\n"
            '    def f(self): ...\n    f.short_description = "state badge"\n',
        ),
        ("api.py", '@extend_schema(summary="Upload consent (JSON or CSV)")\ndef f(r): ...\n'),
        (
            "api.py",
            '@extend_schema(summary=_("Upload"), description="All or nothing")\ndef f(r): ...\n',
        ),
        ("api.py", '_SITE = OpenApiParameter("site", str, description="the site\'s slug")\n'),
        ("api.py", 'R = {404: OpenApiResponse(description="no such dataset")}\n'),
        ("serializers.py", 'class S(Serializer):\n    a = CharField(help_text="Purpose code")\n'),
        (
            "serializers.py",
            "class S(Serializer):\n"
            '    a = IntegerField(error_messages={"invalid": "must be a whole number"})\n',
        ),
    ],
)
def test_python_check_finds_unmarked_strings(tmp_path, name, source):
    assert catalogue.python_findings(_module(tmp_path, name, source))


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("admin.py", '@admin.display(description=_("state"))\ndef f(o): ...\n'),
        ("admin.py", 'def f(self, r):\n    self.message_user(r, _("%(a)s: done") % {"a": x})\n'),
        ("views.py", 'def f(r):\n    ctx = {"title": _("Place a legal hold")}\n'),
        (
            "models.py",
            "class M(models.Model):\n"
            '    a = models.CharField(_("a"), max_length=3)\n'
            '    b = models.ForeignKey(X, on_delete=models.PROTECT, verbose_name=_("b"))\n'
            "    class Meta:\n"
            '        verbose_name = _("m")\n'
            '        verbose_name_plural = _("ms")\n',
        ),
        ("choices.py", 'class S(models.TextChoices):\n    ACTIVE = "active", _("Active")\n'),
        ("views.py", 'def f(r):\n    logger.info("Ledger verified %s", x)\n'),
        (
            "api.py",
            '@extend_schema(summary=_("Upload"), description=_("All or nothing"))\n'
            "def f(r): ...\n"
            'P = OpenApiParameter("site", str, enum=["a", "b"], description=_("slug"))\n',
        ),
        (
            "serializers.py",
            "class S(Serializer):\n"
            '    a = IntegerField(error_messages={"invalid": _("must be a whole number")})\n',
        ),
    ],
)
def test_python_check_accepts_marked_strings_and_non_user_text(tmp_path, name, source):
    assert catalogue.python_findings(_module(tmp_path, name, source)) == []


def test_python_check_reads_the_api_modules_and_packages(tmp_path):
    """Serializers, API modules and API packages are read; reports' admin, models and API
    although the app keeps its own catalogue; an app's services are not (their errors are
    tested per language where a person reads them)."""
    wanted = [
        "sites/serializers.py",
        "sites/api.py",
        "training/api/gate.py",
        "reports/api.py",
        "reports/admin.py",
        "reports/models.py",
        "fedgov/api_root.py",
    ]
    for name in [*wanted, "sites/services/consent.py", "reports/pdf.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = {str(p.relative_to(tmp_path)) for p in catalogue.python_files(tmp_path)}
    assert found == set(wanted)


# --- (c), (e) catalogues: planted defects ------------------------------------------------


@pytest.fixture
def locale_copy(tmp_path) -> Path:
    copy = tmp_path / "locale"
    shutil.copytree(ROOT / "locale", copy)
    return copy


def _po(locale_dir: Path, language: str) -> Path:
    return locale_dir / language / "LC_MESSAGES" / "django.po"


def _edit(po_path: Path, change) -> polib.POEntry:
    po = polib.pofile(str(po_path))
    entry = next(e for e in po if not e.msgid_plural and "%" not in e.msgid and e.msgstr)
    change(entry)
    po.save()
    return entry


def test_language_check_finds_an_empty_msgstr(locale_copy):
    assert catalogue.po_findings(_po(locale_copy, "pl")) == []
    entry = _edit(_po(locale_copy, "pl"), lambda e: setattr(e, "msgstr", ""))
    (finding,) = catalogue.po_findings(_po(locale_copy, "pl"))
    assert "no translation" in finding.text and entry.msgid[:20] in finding.text


def test_language_check_finds_a_fuzzy_entry(locale_copy):
    _edit(_po(locale_copy, "de"), lambda e: e.flags.append("fuzzy"))
    assert any("fuzzy" in f.text for f in catalogue.po_findings(_po(locale_copy, "de")))


def test_language_check_finds_a_missing_plural_form(locale_copy):
    po = polib.pofile(str(_po(locale_copy, "pl")))
    entry = next(e for e in po if e.msgid_plural)
    assert len(entry.msgstr_plural) == 4  # Polish has four forms
    entry.msgstr_plural[3] = ""
    po.save()
    assert any("plural" in f.text for f in catalogue.po_findings(_po(locale_copy, "pl")))


def test_language_check_finds_a_lost_placeholder(locale_copy):
    po = polib.pofile(str(_po(locale_copy, "fr")))
    entry = next(e for e in po if "%(" in e.msgid and not e.msgid_plural)
    entry.msgstr = entry.msgstr.replace("%(", "%(x")
    po.save()
    assert any("placeholders" in f.text for f in catalogue.po_findings(_po(locale_copy, "fr")))


def test_language_check_finds_a_missing_language_and_a_missing_msgid(locale_copy):
    assert catalogue.language_findings(locale_copy, "django") == []
    po = polib.pofile(str(_po(locale_copy, "es")))
    dropped = po[5]
    po.remove(dropped)
    po.save()
    (finding,) = catalogue.language_findings(locale_copy, "django")
    assert "es lacks msgid" in finding.text
    shutil.rmtree(locale_copy / "fr")
    assert any(
        "fr lacks this catalogue" in f.text
        for f in catalogue.language_findings(locale_copy, "django")
    )


def test_mo_check_finds_a_stale_and_a_missing_mo(locale_copy):
    po_path = _po(locale_copy, "de")
    assert catalogue.mo_findings(po_path) == []
    _edit(po_path, lambda e: setattr(e, "msgstr", e.msgstr + " (neu)"))
    assert catalogue.mo_findings(po_path), "an edited .po must make the old .mo stale"
    catalogue.compile_catalogues(locale_copy.parent)
    assert catalogue.mo_findings(po_path) == []
    po_path.with_suffix(".mo").unlink()
    assert "no compiled .mo" in catalogue.mo_findings(po_path)[0].text


def test_compiled_mo_is_what_django_reads(locale_copy):
    """polib's .mo is a real GNU catalogue: Python's gettext reads the same translation."""
    import gettext

    po = polib.pofile(str(_po(locale_copy, "pl")))
    entry = next(e for e in po if e.msgid == "Ledger health")
    with (locale_copy / "pl" / "LC_MESSAGES" / "django.mo").open("rb") as handle:
        assert gettext.GNUTranslations(handle).gettext("Ledger health") == entry.msgstr


@pytest.fixture
def two_catalogues(tmp_path) -> tuple[Path, Path]:
    """A copy of the root catalogue and of the reports' one, as Django merges them."""
    root, app = tmp_path / "locale", tmp_path / "reports" / "locale"
    shutil.copytree(ROOT / "locale", root)
    shutil.copytree(ROOT / "reports" / "locale", app)
    return root, app


def _add(po_path: Path, entry: polib.POEntry) -> None:
    po = polib.pofile(str(po_path))
    po.append(entry)
    po.save()


def test_clash_check_finds_one_msgid_translated_two_ways(two_catalogues):
    root, app = two_catalogues
    assert catalogue.clash_findings([root, app]) == []
    _add(_po(root, "es"), polib.POEntry(msgid="Zzz closed", msgstr="Cerradas"))
    _add(_po(app, "es"), polib.POEntry(msgid="Zzz closed", msgstr="Cerrada"))
    (finding,) = catalogue.clash_findings([root, app])
    assert "es: 'Zzz closed'" in finding.text and "'Cerradas'" in finding.text
    assert "reports/locale/es" in finding.path  # the later catalogue is named


def test_clash_check_accepts_the_same_msgid_in_another_context(two_catalogues):
    root, app = two_catalogues
    _add(_po(root, "fr"), polib.POEntry(msgid="Zzz approved", msgstr="Validé"))
    _add(
        _po(app, "fr"),
        polib.POEntry(msgctxt="DPIA status", msgid="Zzz approved", msgstr="Approuvée"),
    )
    assert catalogue.clash_findings([root, app]) == []
    # ... and the same words in both catalogues are no clash either.
    _add(_po(app, "fr"), polib.POEntry(msgid="Zzz approved", msgstr="Validé"))
    assert catalogue.clash_findings([root, app]) == []


def test_clash_check_compares_plural_forms(two_catalogues):
    root, app = two_catalogues
    forms = {0: "%(n)s tura", 1: "%(n)s tury", 2: "%(n)s tur", 3: "%(n)s tury"}
    entry = dict(msgid="Zzz %(n)s round", msgid_plural="Zzz %(n)s rounds")
    _add(_po(root, "pl"), polib.POEntry(**entry, msgstr_plural=forms))
    _add(_po(app, "pl"), polib.POEntry(**entry, msgstr_plural={**forms, 2: "%(n)s rund"}))
    (finding,) = catalogue.clash_findings([root, app])
    assert finding.text.startswith("pl: 'Zzz %(n)s round'")


def test_django_shows_the_root_translation_where_catalogues_clash():
    """Why the check exists: the root catalogue's word is the one a reader sees."""
    from django.utils import translation

    from reports.choices import ReportStatus
    from training.choices import DpiaStatus, RoundState

    with translation.override("es"):
        assert str(RoundState.CLOSED.label) == "Cerrada"  # one round
        assert translation.gettext("Closed") == "Cerradas"  # the dashboard's column
        assert str(ReportStatus.FAILED.label) == "Fallido"  # el informe
        assert str(RoundState.FAILED.label) == "Fallida"  # la ronda
    with translation.override("fr"):
        assert str(DpiaStatus.APPROVED.label) == "Approuvée"  # l'AIPD
        assert str(RoundState.APPROVED.label) == "Validé"  # le tour


# --- (d) staleness: planted defects ------------------------------------------------------


def test_extraction_finds_a_newly_marked_string_and_a_removed_one(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "admin.py").write_text(
        "from django.utils.translation import gettext_lazy as _, ngettext, pgettext_lazy\n"
        'A = _("Brand new string")\nB = ngettext("%(n)s site", "%(n)s sites", 2)\n'
        'C = pgettext_lazy("verb", "Release")\nD = _(f"not extractable {A}")\n'
    )
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.html").write_text(
        "{% load i18n %}{% translate 'From a template' %}"
        "{% blocktranslate count n=k %}{{ n }} hold{% plural %}{{ n }} holds{% endblocktranslate %}"
        "{% translate 'menu' context 'noun' %}"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "admin.py").write_text('_("ignored, as makemessages -i tests")\n')
    found = catalogue.extract_msgids(tmp_path)
    assert found == {
        ("", "Brand new string", ""),
        ("", "%(n)s site", "%(n)s sites"),
        ("verb", "Release", ""),
        ("", "From a template", ""),
        ("", "%(n)s hold", "%(n)s holds"),
        ("noun", "menu", ""),
    }
    committed = catalogue.committed_msgids()
    assert ("", "Brand new string", "") not in committed  # so the project test would fail


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is not installed")
def test_pure_python_extraction_equals_makemessages(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    for path in catalogue.source_files(ROOT, (".py", ".html", ".txt"), ignore=()):
        target = tree / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    monkeypatch.chdir(tree)
    with override_settings(LOCALE_PATHS=[tree / "locale"]):
        call_command(
            "makemessages",
            locale=["de"],
            ignore_patterns=list(catalogue.ROOT_CATALOGUE_IGNORES),
            verbosity=0,
        )
    made = {
        catalogue.entry_key(e) for e in polib.pofile(str(tree / "locale/de/LC_MESSAGES/django.po"))
    }
    assert made == catalogue.extract_msgids(tree, ignore=catalogue.ROOT_CATALOGUE_IGNORES)
    assert made == catalogue.extract_msgids(ROOT, ignore=catalogue.ROOT_CATALOGUE_IGNORES)

"""Checks that every string a person reads is marked and translated (issue 19), in pure Python.

A fresh machine has no GNU gettext (``xgettext``, ``msgfmt``: Debian's ``gettext`` package
is not among what it starts with), so CI cannot run ``makemessages`` or
``compilemessages``. This module does their checking part without them:

- ``template_findings``: text a template shows outside ``{% translate %}`` /
  ``{% blocktranslate %}``, found by walking Django's own template lexer tokens, then the
  HTML text and visible attributes between them;
- ``python_findings``: user-facing keyword arguments, attributes and calls (verbose names,
  help texts, choice labels, admin descriptions, messages, form errors) given a plain
  string literal instead of a ``gettext`` call;
- ``extract_msgids``: what ``makemessages`` would extract now (Python by the same
  keywords Django gives ``xgettext``; templates through Django's own ``templatize``),
  compared with the committed catalogues;
- ``catalogue_findings``: a language missing, an entry untranslated or fuzzy, a
  placeholder lost, a ``.mo`` that does not hold what its ``.po`` says;
- ``clash_findings``: one msgid (in one context) translated differently by two
  catalogues of a language. Django merges the catalogues into one, the root's
  (``LOCALE_PATHS``) winning, so the app's translation would never be shown: a word that
  needs another translation in another use needs its own context (``pgettext``).

Development and CI only: it needs ``polib`` (requirements-dev.txt).
"""

from __future__ import annotations

import ast
import gettext as gnu_gettext
import io
import os
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import polib
from django.core.management.utils import is_ignored_path
from django.template.base import DebugLexer, TokenType
from django.utils.translation.template import templatize

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = ("de", "es", "pl", "fr")
# Folders that are not the service people read: tests, benchmarks, the site package
# (no Django, no catalogue), deployment files, docs, scenario files. ``make messages``
# passes the same list to makemessages (-i), so both extract from the same files.
IGNORED = ("tests", "bench", "fedgov-flower", "deploy", "docs", "scenarios", "var")
# The root catalogue (locale/) holds every string but those of the apps that keep their
# own catalogue (issue 19, part R: the gate's reasons and the reports); makemessages skips
# every app-level ``locale`` folder, so it does not file training/admin's strings there.
# (Patterns as makemessages reads them: a bare name, or "dir/*", matches that name
# anywhere, so reports/ is named by its files: templates/admin/reports is ours.)
ROOT_CATALOGUE_IGNORES = (
    *IGNORED,
    "locale",
    "training/gate",
    *(f"reports/*.{x}" for x in ("py", "html", "txt")),
)
# makemessages' own defaults (its --no-default-ignore turns them off).
DEFAULT_IGNORES = ("CVS", ".*", "*~", "*.pyc")

# Words a template may show untranslated: the product's name and logo, the time-zone
# designator printed after 24-hour times, and the symbols of the DP formulas.
ALLOWED_WORDS = frozenset({"fedgov", "fg", "UTC", "ε", "δ", "z", "C", "v"})
# Elements whose content is CSS, script or a literal a person types or reads as code
# (a CSV header, a command): never translated.
LITERAL_ELEMENTS = frozenset({"style", "script", "code", "kbd", "samp"})
# Django admin blocks that hold CSS classes or <head> assets, never text.
HIDDEN_BLOCKS = frozenset({"bodyclass", "coltype", "extrastyle", "extrahead", "stylesheet"})
# Attributes whose value a person reads (on screen or through a screen reader).
VISIBLE_ATTRIBUTES = frozenset({"title", "placeholder", "alt", "aria-label", "label"})

# The keywords Django's makemessages hands xgettext for Python (plus xgettext's own
# defaults): name -> (context argument index or None, singular index, plural index or None).
KEYWORDS: dict[str, tuple[int | None, int, int | None]] = {
    "_": (None, 0, None),
    "gettext": (None, 0, None),
    "gettext_lazy": (None, 0, None),
    "gettext_noop": (None, 0, None),
    "ngettext": (None, 0, 1),
    "ngettext_lazy": (None, 0, 1),
    "pgettext": (0, 1, None),
    "pgettext_lazy": (0, 1, None),
    "npgettext": (0, 1, 2),
    "npgettext_lazy": (0, 1, 2),
}

# Where a plain string literal reaches a person (the brief of issue 19, part S).
# ``summary``: an OpenAPI operation's title (``extend_schema``); ``description`` covers
# ``extend_schema``, ``OpenApiParameter`` and ``OpenApiResponse`` as well as the admin's.
TEXT_KEYWORDS = frozenset(
    {
        "verbose_name",
        "verbose_name_plural",
        "help_text",
        "description",
        "summary",
        "label",
        "empty_label",
    }
)
TEXT_ATTRIBUTES = frozenset({"short_description", "verbose_name", "verbose_name_plural", "title"})
MESSAGE_CALLS = frozenset({"debug", "info", "success", "warning", "error", "add_message"})
# The API's modules too: their help texts and schema descriptions are the OpenAPI
# document a reader opens in their language (/api/schema/, /api/docs/).
SCANNED_MODULES = (
    "admin.py",
    "forms.py",
    "views.py",
    "models.py",
    "choices.py",
    "apps.py",
    "serializers.py",
    "api.py",
    "filters.py",
)
SCANNED_PACKAGES = ("admin", "forms", "views", "api")


@dataclass(frozen=True)
class Finding:
    """One defect: where it is and what is wrong."""

    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def source_files(
    root: Path, suffixes: Iterable[str], ignore: Iterable[str] = IGNORED
) -> list[Path]:
    """Files under ``root`` makemessages reads with these ``-i`` patterns (its own rules)."""
    patterns = [*ignore, *DEFAULT_IGNORES]
    wanted = tuple(suffixes)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not is_ignored_path(str(here / d), patterns)]
        for name in filenames:
            relative = here / name
            if relative.suffix in wanted and not is_ignored_path(str(relative), patterns):
                found.append(root / relative)
    return sorted(found)


# --- (a) templates -----------------------------------------------------------------------


def _has_words(text: str) -> bool:
    return any(w not in ALLOWED_WORDS for w in re.findall(r"[^\W\d_][\w'’-]*", text))


class _VisibleText(HTMLParser):
    """Collects the text and visible attribute values of an HTML page, outside literals."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in LITERAL_ELEMENTS:
            self._hidden += 1
        for name, value in attrs:
            is_button_value = name == "value" and dict(attrs).get("type") in ("submit", "button")
            if value and (name in VISIBLE_ATTRIBUTES or is_button_value) and _has_words(value):
                self.found.append((self.getpos()[0], f"{name}={value.strip()!r}"))

    def handle_endtag(self, tag: str) -> None:
        if tag in LITERAL_ELEMENTS and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and _has_words(data):
            self.found.append((self.getpos()[0], " ".join(data.split())))


def _blank(text: str) -> str:
    """Keeps the line breaks (so line numbers hold) and nothing else."""
    return re.sub(r"[^\n]", " ", text)


def template_findings(path: Path) -> list[Finding]:
    """Text of one template a person reads that no translate tag covers."""
    source = path.read_text(encoding="utf-8")
    shown: list[str] = []
    inside: str | None = None  # "blocktranslate", "comment", "verbatim"
    blocks: list[str] = []
    for token in DebugLexer(source).tokenize():
        contents = token.contents.strip()
        first = contents.split(" ", 1)[0] if token.token_type == TokenType.BLOCK else ""
        if inside is None and first in ("blocktranslate", "blocktrans", "comment", "verbatim"):
            inside = {"blocktrans": "blocktranslate"}.get(first, first)
        elif inside and first in (f"end{inside}", "endblocktrans"):
            inside = None
        if first == "block":
            blocks.append(contents.split()[1] if len(contents.split()) > 1 else "")
        elif first == "endblock" and blocks:
            blocks.pop()
        visible = inside in (None, "verbatim") and not HIDDEN_BLOCKS.intersection(blocks)
        if token.token_type == TokenType.TEXT and visible:
            shown.append(token.contents)
        else:
            # A variable or tag stands in the text as one neutral character, so text on
            # its two sides is not read as one word and an attribute value stays quoted.
            start, end = token.position or (0, 0)  # DebugLexer always sets it
            shown.append("\u2063" + _blank(source[start:end])[1:])
    parser = _VisibleText()
    parser.feed("".join(shown))
    parser.close()
    return [
        Finding(_relative(path), line, f"not translated: {text!r}") for line, text in parser.found
    ]


# --- (b) Python --------------------------------------------------------------------------


def _callee(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _unmarked(node: ast.expr | None) -> bool:
    """A plain literal, an f-string, or an operation/format on one, with letters in it."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        text = node.value
        return isinstance(text, str) and _letters(text) and text.strip() not in ALLOWED_WORDS
    if isinstance(node, ast.JoinedStr):
        return any(_unmarked(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return _unmarked(node.left) or (isinstance(node.op, ast.Add) and _unmarked(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("format", "upper", "lower", "capitalize", "strip"):
            return _unmarked(node.func.value)
        if node.func.attr == "join":
            return False
    if isinstance(node, ast.IfExp):
        return _unmarked(node.body) or _unmarked(node.orelse)
    return False


def _letters(text: str) -> bool:
    return bool(re.search(r"[^\W\d_]{2,}", text))


def _choice_labels(node: ast.expr) -> Iterator[ast.expr]:
    """The labels of a literal ``choices=[(value, label), ...]``."""
    if isinstance(node, ast.List | ast.Tuple):
        for item in node.elts:
            if isinstance(item, ast.Tuple) and len(item.elts) == 2:
                yield item.elts[1]


def _is_text_choices(node: ast.ClassDef) -> bool:
    return any(_callee(b) in ("TextChoices", "IntegerChoices", "Choices") for b in node.bases)


class _PythonScan(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Finding] = []
        self._classes: list[ast.ClassDef] = []
        self._function_depth = 0

    def _flag(self, node: ast.AST, what: str) -> None:
        self.found.append(Finding(self.path, getattr(node, "lineno", 0), what))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if _is_text_choices(node):
            for statement in node.body:
                if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Tuple):
                    members = statement.value.elts
                    if len(members) >= 2 and _unmarked(members[-1]):
                        self._flag(statement, "choice label not marked for translation")
                elif (
                    isinstance(statement, ast.Assign)
                    and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.targets[0], ast.Name)
                    and statement.targets[0].id.isupper()
                ):
                    # Django makes an English label from the member's name.
                    self._flag(statement, "choice without a translated label")
        if self.path.endswith("models.py") and not self._classes:
            self._check_meta(node)
        if any("Form" in _callee(b) for b in node.bases):
            self._check_form_labels(node)
        self._classes.append(node)
        self.generic_visit(node)
        self._classes.pop()

    def _check_form_labels(self, node: ast.ClassDef) -> None:
        """A form field's label comes from label=, else from its English attribute name."""
        for statement in node.body:
            call = statement.value if isinstance(statement, ast.Assign) else None
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and _callee(call.func.value) == "forms"
                and call.func.attr.endswith("Field")
                and _keyword(call, "label") is None
            ):
                self._flag(statement, f"form field {call.func.attr} without a translated label")

    def _check_meta(self, node: ast.ClassDef) -> None:
        """A model's name in admin headings comes from Meta, else from its English class name."""
        fields = [
            s
            for s in node.body
            if isinstance(s, ast.Assign)
            and isinstance(s.value, ast.Call)
            and _is_model_field(s.value)
        ]
        meta = next(
            (s for s in node.body if isinstance(s, ast.ClassDef) and s.name == "Meta"), None
        )
        names = {
            t.id
            for s in (meta.body if meta else [])
            if isinstance(s, ast.Assign)
            for t in s.targets
            if isinstance(t, ast.Name)
        }
        for field in fields:
            self._check_field(field.value)  # type: ignore[arg-type]
        if fields and "abstract" not in names:
            for wanted in ("verbose_name", "verbose_name_plural"):
                if wanted not in names:
                    self._flag(node, f"model {node.name} without a translated Meta.{wanted}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function_depth += 1
        self.generic_visit(node)
        self._function_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            name = target.attr if isinstance(target, ast.Attribute) else _callee(target)
            if name in TEXT_ATTRIBUTES and _unmarked(node.value):
                in_filter = name != "title" or any(
                    "Filter" in _callee(b) for c in self._classes for b in c.bases
                )
                if in_filter:
                    self._flag(node, f"{name} not marked for translation")
            if name == "choices" and any(_unmarked(lab) for lab in _choice_labels(node.value)):
                self._flag(node, "choice label not marked for translation")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        # An admin view's context: Django's admin templates show "title" as the heading.
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "title" and _unmarked(value):
                self._flag(value, "page title not marked for translation")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _callee(node.func)
        for keyword in node.keywords:
            if keyword.arg in TEXT_KEYWORDS and _unmarked(keyword.value):
                self._flag(keyword.value, f"{keyword.arg}= not marked for translation")
            if keyword.arg == "choices" and any(
                _unmarked(lab) for lab in _choice_labels(keyword.value)
            ):
                self._flag(keyword.value, "choice label not marked for translation")
            # A form or serializer field's own refusals, read by whoever sent the value.
            messages_given = keyword.value if keyword.arg == "error_messages" else None
            if isinstance(messages_given, ast.Dict) and any(
                _unmarked(v) for v in messages_given.values
            ):
                self._flag(keyword.value, "error_messages text not marked for translation")
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if name in MESSAGE_CALLS and _callee(receiver) == "messages" if receiver else False:
            text = node.args[2] if name == "add_message" and len(node.args) > 2 else None
            text = text if name == "add_message" else (node.args[1] if len(node.args) > 1 else None)
            if _unmarked(text) or _unmarked(_keyword(node, "message")):
                self._flag(node, f"messages.{name} text not marked for translation")
        message = node.args[1] if len(node.args) > 1 else _keyword(node, "message")
        if name == "message_user" and _unmarked(message):
            self._flag(node, "message_user text not marked for translation")
        error = node.args[0] if node.args else _keyword(node, "message")
        # Every scanned module is one whose errors reach a form (admin, views, forms, models).
        if name == "ValidationError" and _unmarked(error):
            self._flag(node, "ValidationError message not marked for translation")
        if name == "add_error" and len(node.args) > 1 and _unmarked(node.args[1]):
            self._flag(node, "form error not marked for translation")
        self.generic_visit(node)

    def _check_field(self, node: ast.Call) -> None:
        if _callee(node.func) == "GeneratedField":
            return  # see audit.models.LedgerEntry.leaf: its definition must not change
        verbose = _keyword(node, "verbose_name")
        positional = None if _callee(node.func) in RELATION_FIELDS else next(iter(node.args), None)
        given = verbose if verbose is not None else positional
        if given is None:
            self._flag(node, f"{_callee(node.func)} without a translated verbose_name")


RELATION_FIELDS = frozenset({"ForeignKey", "OneToOneField", "ManyToManyField"})


def _is_model_field(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and _callee(func.value) == "models"
        and (func.attr.endswith("Field") or func.attr in RELATION_FIELDS)
    )


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def python_files(root: Path) -> list[Path]:
    """The modules whose strings people read: admin, forms, views, models, choices, API."""
    return [
        p
        for p in source_files(root, (".py",))
        if "migrations" not in p.parts
        # reports/ keeps its own catalogue (reports/locale), filed by hand, not by
        # makemessages: its strings are checked all the same, or nothing would catch one
        # left unmarked there.
        and p.relative_to(root).parts[:2] != ("training", "gate")
        and (
            p.name in SCANNED_MODULES
            or p.parent.name in SCANNED_PACKAGES
            or p.stem.endswith(("_views", "_forms", "_serializers"))
            or p.stem.startswith(("admin_", "api_"))
        )
    ]


def python_findings(path: Path) -> list[Finding]:
    """User-facing plain literals in one Python module."""
    scan = _PythonScan(_relative(path))
    scan.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return scan.found


# --- (d) extraction, as makemessages would do it -----------------------------------------

Msgid = tuple[str, str, str]  # (context, singular, plural); "" where absent


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _msgid_of(name: str, args: list[str | None]) -> Msgid | None:
    context_at, singular_at, plural_at = KEYWORDS[name]
    needed = [i for i in (context_at, singular_at, plural_at) if i is not None]
    if len(args) <= max(needed) or any(args[i] is None for i in needed):
        return None
    return (
        args[context_at] or "" if context_at is not None else "",
        args[singular_at] or "",
        args[plural_at] or "" if plural_at is not None else "",
    )


def python_msgids(source: str) -> set[Msgid]:
    found: set[Msgid] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _callee(node.func) in KEYWORDS:
            msgid = _msgid_of(_callee(node.func), [_literal(a) for a in node.args])
            if msgid and msgid[1]:
                found.add(msgid)
    return found


def _token_msgids(code: str) -> set[Msgid]:
    """Calls in templatize's output, read token by token as xgettext reads Python."""
    # Indentation means nothing here (blanked template text); tokenize would reject it.
    flat = "\n".join(line.lstrip() for line in code.splitlines())
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(flat).readline)
        if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT)
    ]
    found: set[Msgid] = set()
    for i, token in enumerate(tokens[:-1]):
        if token.type != tokenize.NAME or token.string not in KEYWORDS:
            continue
        if tokens[i + 1].string != "(":
            continue
        args: list[str | None] = []
        current: list[tokenize.TokenInfo] = []
        depth = 0
        for t in tokens[i + 2 :]:
            if t.string in "([{" and t.type == tokenize.OP:
                depth += 1
            elif t.string in ")]}" and t.type == tokenize.OP:
                if depth == 0:
                    break
                depth -= 1
            if t.string == "," and depth == 0 and t.type == tokenize.OP:
                args.append(_strings(current))
                current = []
            else:
                current.append(t)
        args.append(_strings(current))
        msgid = _msgid_of(token.string, args)
        if msgid and msgid[1]:
            found.add(msgid)
    return found


def _strings(tokens: list[tokenize.TokenInfo]) -> str | None:
    if not tokens or any(t.type != tokenize.STRING for t in tokens):
        return None
    return "".join(ast.literal_eval(t.string) for t in tokens)


def template_msgids(source: str, origin: str) -> set[Msgid]:
    return _token_msgids(templatize(source, origin))


def extract_msgids(root: Path = ROOT, ignore: Iterable[str] = IGNORED) -> set[Msgid]:
    """Every msgid of the django domain makemessages would find under ``root`` now."""
    found: set[Msgid] = set()
    for path in source_files(root, (".py",), ignore):
        found |= python_msgids(path.read_text(encoding="utf-8"))
    for path in source_files(root, (".html", ".txt"), ignore):
        found |= template_msgids(path.read_text(encoding="utf-8"), str(path))
    return found


# --- (c), (e) catalogues -----------------------------------------------------------------


def catalogue_dirs(root: Path = ROOT) -> list[Path]:
    """Every ``locale`` folder of the project: the root one and the apps' own."""
    return sorted(
        p
        for p in root.rglob("locale")
        if p.is_dir()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.relative_to(root).parts[0] not in IGNORED
    )


def po_files(locale_dir: Path) -> list[Path]:
    return sorted(locale_dir.glob("*/LC_MESSAGES/*.po"))


def entry_key(entry: polib.POEntry) -> Msgid:
    return (entry.msgctxt or "", entry.msgid, entry.msgid_plural or "")


def committed_msgids(root: Path = ROOT, domain: str = "django") -> set[Msgid]:
    found: set[Msgid] = set()
    for locale_dir in catalogue_dirs(root):
        for po_path in locale_dir.glob(f"*/LC_MESSAGES/{domain}.po"):
            found |= {entry_key(e) for e in polib.pofile(str(po_path)) if not e.obsolete}
    return found


PLACEHOLDER = re.compile(r"%\((\w+)\)[sdrf]|%[sdrf]|\{\w*\}")


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text) and [m.group(0) for m in PLACEHOLDER.finditer(text)])


def _entry_findings(po_path: Path, entry: polib.POEntry, nplurals: int) -> Iterator[Finding]:
    where = _relative(po_path)
    line = entry.linenum
    label = repr(entry.msgid[:60])
    if "fuzzy" in entry.flags:
        yield Finding(where, line, f"fuzzy translation of {label}")
    if entry.msgid_plural:
        forms = entry.msgstr_plural
        if len(forms) != nplurals or not all(forms.get(i) for i in range(nplurals)):
            yield Finding(where, line, f"missing plural forms ({nplurals} needed) for {label}")
        wanted = set(_placeholders(entry.msgid_plural))
        for text in forms.values():
            if text and not set(_placeholders(text)) <= wanted | set(_placeholders(entry.msgid)):
                yield Finding(where, line, f"placeholders differ in the translation of {label}")
    elif not entry.msgstr:
        yield Finding(where, line, f"no translation for {label}")
    elif _placeholders(entry.msgstr) != _placeholders(entry.msgid):
        yield Finding(where, line, f"placeholders differ in the translation of {label}")


def _nplurals(po: polib.POFile) -> int:
    match = re.search(r"nplurals\s*=\s*(\d+)", po.metadata.get("Plural-Forms", ""))
    return int(match.group(1)) if match else 0


def po_findings(po_path: Path) -> list[Finding]:
    """Untranslated, fuzzy or placeholder-breaking entries of one catalogue."""
    po = polib.pofile(str(po_path))
    nplurals = _nplurals(po)
    found: list[Finding] = []
    if not nplurals:
        found.append(Finding(_relative(po_path), 1, "no Plural-Forms header"))
    for entry in po:
        if not entry.obsolete:
            found.extend(_entry_findings(po_path, entry, nplurals))
    return found


def mo_catalog_of(po_path: Path) -> dict[object, str]:
    """What a correct .mo for this .po holds, keyed as Python's gettext keys it."""
    expected: dict[object, str] = {}
    for entry in polib.pofile(str(po_path)).translated_entries():
        key = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
        if entry.msgid_plural:
            for index, text in entry.msgstr_plural.items():
                expected[(key, int(index))] = text
        else:
            expected[key] = entry.msgstr
    return expected


def mo_findings(po_path: Path) -> list[Finding]:
    """The compiled catalogue beside a .po is missing or says something else."""
    mo_path = po_path.with_suffix(".mo")
    if not mo_path.exists():
        return [Finding(_relative(po_path), 1, "no compiled .mo beside it: make messages")]
    with mo_path.open("rb") as handle:
        compiled = dict(gnu_gettext.GNUTranslations(handle)._catalog)  # type: ignore[attr-defined]
    compiled.pop("", None)  # the header
    expected = mo_catalog_of(po_path)
    if compiled != expected:
        differing = sorted(
            str(k)
            for k in set(compiled) ^ set(expected)
            | {k for k in set(compiled) & set(expected) if compiled[k] != expected[k]}
        )
        return [
            Finding(
                _relative(mo_path),
                1,
                f".mo differs from its .po ({len(differing)} entries, "
                f"first {differing[:3]}): make messages",
            )
        ]
    return []


def language_findings(locale_dir: Path, domain: str) -> list[Finding]:
    """Each translated language has this catalogue, with the same msgids as the others."""
    found: list[Finding] = []
    keys: dict[str, set[Msgid]] = {}
    for language in TRANSLATED:
        po_path = locale_dir / language / "LC_MESSAGES" / f"{domain}.po"
        if not po_path.exists():
            found.append(Finding(_relative(po_path), 0, f"{language} lacks this catalogue"))
            continue
        keys[language] = {entry_key(e) for e in polib.pofile(str(po_path)) if not e.obsolete}
    union = set().union(*keys.values()) if keys else set()
    for language, have in keys.items():
        for missing in sorted(union - have):
            found.append(
                Finding(
                    _relative(locale_dir / language), 0, f"{language} lacks msgid {missing[1]!r}"
                )
            )
    return found


def _translation(entry: polib.POEntry) -> tuple[str, ...]:
    if entry.msgid_plural:
        return tuple(entry.msgstr_plural[i] for i in sorted(entry.msgstr_plural))
    return (entry.msgstr,)


def clash_findings(locale_dirs: Iterable[Path], domain: str = "django") -> list[Finding]:
    """The same (context, msgid) translated differently in two catalogues of a language.

    Django reads every catalogue of a language into one dictionary and the root's wins
    (``LOCALE_PATHS`` before the apps', django/utils/translation/trans_real.py), so an
    app's differing translation is dead text, or, worse, the root's word shows where it
    is wrong (a feminine form for a masculine noun). Same words, different sense: give
    each use its own context; same sense: one translation everywhere.
    """
    found: list[Finding] = []
    for language in TRANSLATED:
        seen: dict[Msgid, tuple[Path, tuple[str, ...]]] = {}
        for locale_dir in locale_dirs:
            po_path = locale_dir / language / "LC_MESSAGES" / f"{domain}.po"
            if not po_path.exists():
                continue  # language_findings reports it
            for entry in polib.pofile(str(po_path)):
                if entry.obsolete:
                    continue
                key, text = entry_key(entry), _translation(entry)
                if key not in seen:
                    seen[key] = (po_path, text)
                    continue
                first, first_text = seen[key]
                if first_text != text:
                    context = f" in context {key[0]!r}" if key[0] else ""
                    found.append(
                        Finding(
                            _relative(po_path),
                            entry.linenum,
                            f"{language}: {key[1][:60]!r}{context} is {text[0]!r} here but "
                            f"{first_text[0]!r} in {_relative(first)}: give the uses their "
                            "own context (pgettext) or one translation",
                        )
                    )
    return found


def compile_catalogues(root: Path = ROOT) -> list[Path]:
    """Writes every .mo from its .po, as msgfmt would, without gettext installed."""
    written = []
    for locale_dir in catalogue_dirs(root):
        for po_path in po_files(locale_dir):
            polib.pofile(str(po_path)).save_as_mofile(str(po_path.with_suffix(".mo")))
            written.append(po_path.with_suffix(".mo"))
    return written

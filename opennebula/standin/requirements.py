"""oned's requirement expressions (``SCHED_REQUIREMENTS``), parsed and evaluated.

Grammar (as in oned's scheduler): ``expr := term ('|' term)*``, ``term := factor ('&'
factor)*``, ``factor := '!' factor | '(' expr ')' | NAME op value``, ``op`` one of ``=``,
``!=``, ``>``, ``<``, ``@>`` (vector contains). ``=`` accepts ``*`` wildcards. An attribute
the object lacks never matches (deny by default, as oned does).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<op>!=|@>|=|>|<|&|\||!|\(|\))
      | (?P<word>[A-Za-z0-9_./:\-*]+)
    )""",
    re.VERBOSE,
)

Predicate = Callable[[Mapping[str, str]], bool]


class RequirementSyntaxError(ValueError):
    """The expression does not parse; oned refuses such a template."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise RequirementSyntaxError(
                f"unexpected text at offset {pos}: {text[pos : pos + 10]!r}"
            )
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = match.end()
    return out


def _compare(op: str, actual: str | None, expected: str) -> bool:
    if actual is None:
        return False
    if op == "=":
        return fnmatch.fnmatchcase(actual, expected)
    if op == "!=":
        return not fnmatch.fnmatchcase(actual, expected)
    if op == "@>":
        return expected in [part.strip() for part in actual.split(",")]
    try:
        left, right = float(actual), float(expected)
    except ValueError:
        left, right = actual, expected  # type: ignore[assignment]
    return left > right if op == ">" else left < right


def parse(text: str) -> Predicate:
    """Compile ``text`` into a predicate over an attribute mapping; empty text matches all."""
    tokens = _tokens(text)
    if not tokens:
        return lambda attrs: True
    return _Parser(tokens).whole()


class _Parser:
    """Recursive descent over the tokens: expr := term ('|' term)*, term := factor
    ('&' factor)*, factor := '!' factor | '(' expr ')' | NAME op VALUE."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def whole(self) -> Predicate:
        predicate = self.expr()
        if self.pos != len(self.tokens):
            raise RequirementSyntaxError(
                f"unexpected {self.tokens[self.pos][1]!r} after a complete expression"
            )
        return predicate

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise RequirementSyntaxError("expression ends too early")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == ("op", "|"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda a: any(p(a) for p in parts))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.peek() == ("op", "&"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda a: all(p(a) for p in parts))

    def factor(self) -> Predicate:
        kind, value = self.take()
        if (kind, value) == ("op", "!"):
            inner = self.factor()
            return lambda a: not inner(a)
        if (kind, value) == ("op", "("):
            inner = self.expr()
            if self.take() != ("op", ")"):
                raise RequirementSyntaxError("missing ')'")
            return inner
        if kind != "word":
            raise RequirementSyntaxError(f"expected an attribute name, got {value!r}")
        return self.comparison(value.upper())

    def comparison(self, name: str) -> Predicate:
        op_kind, op = self.take()
        if op_kind != "op" or op not in {"=", "!=", ">", "<", "@>"}:
            raise RequirementSyntaxError(f"expected a comparison after {name}")
        val_kind, expected = self.take()
        if val_kind not in {"str", "word"}:
            raise RequirementSyntaxError(f"expected a value after {name} {op}")
        return lambda a: _compare(op, a.get(name), expected)

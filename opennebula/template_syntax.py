"""OpenNebula's template language: ``KEY = "value"`` lines and ``KEY = [ A = "b" ]`` vectors.

fedgov writes templates in this syntax for ``one.template.instantiate`` and
``one.vm.allocate``; the stand-in parses them the way oned does (also the XML form).
"""

from __future__ import annotations

import re
from xml.etree import ElementTree

# A template maps an upper-case name to a string or to a vector (dict of strings). A name
# may repeat (several DISK or NIC vectors), so values that repeat become lists.
TemplateValue = str | dict[str, str] | list[str | dict[str, str]]
Template = dict[str, TemplateValue]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class TemplateSyntaxError(ValueError):
    """The text is not a valid OpenNebula template."""


def quote(value: str) -> str:
    """Quote a value so oned reads it back unchanged (backslash and double quote escaped)."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(template: dict[str, str | dict[str, str]]) -> str:
    """Render a template: one attribute per line, vectors on one line."""
    lines = []
    for key, value in template.items():
        if not _NAME.fullmatch(key):
            raise TemplateSyntaxError(f"invalid attribute name {key!r}")
        if isinstance(value, dict):
            inner = ", ".join(f"{k.upper()} = {quote(v)}" for k, v in value.items())
            lines.append(f"{key.upper()} = [ {inner} ]")
        else:
            lines.append(f"{key.upper()} = {quote(value)}")
    return "\n".join(lines) + "\n"


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self, newlines: bool = True) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif char in " \t\r" or (newlines and char == "\n"):
                self.pos += 1
            else:
                return

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        self.skip_space()
        if self.peek() != char:
            raise TemplateSyntaxError(f"expected {char!r} at offset {self.pos}")
        self.pos += 1

    def name(self) -> str:
        self.skip_space()
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise TemplateSyntaxError(f"expected an attribute name at offset {self.pos}")
        self.pos = match.end()
        return match.group().upper()

    def value(self) -> str:
        self.skip_space()
        if self.peek() == '"':
            self.pos += 1
            out = []
            while True:
                if self.pos >= len(self.text):
                    raise TemplateSyntaxError("unterminated string")
                char = self.text[self.pos]
                if char == "\\" and self.pos + 1 < len(self.text):
                    out.append(self.text[self.pos + 1])
                    self.pos += 2
                    continue
                self.pos += 1
                if char == '"':
                    return "".join(out)
                out.append(char)
        match = re.compile(r"[^\s,\]\[=\"]+").match(self.text, self.pos)
        if not match:
            raise TemplateSyntaxError(f"expected a value at offset {self.pos}")
        self.pos = match.end()
        return match.group()


def _add(template: dict, key: str, value) -> None:
    if key in template:
        existing = template[key]
        template[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
    else:
        template[key] = value


def parse(text: str) -> Template:
    """Parse a template in OpenNebula syntax or as ``<TEMPLATE>`` XML."""
    if text.lstrip().startswith("<"):
        return parse_xml(text)
    scanner = _Scanner(text)
    template: Template = {}
    while True:
        scanner.skip_space()
        if scanner.pos >= len(text):
            return template
        key = scanner.name()
        scanner.expect("=")
        scanner.skip_space()
        if scanner.peek() == "[":
            scanner.pos += 1
            vector: dict[str, str] = {}
            while True:
                scanner.skip_space()
                if scanner.peek() == "]":
                    scanner.pos += 1
                    break
                sub = scanner.name()
                scanner.expect("=")
                vector[sub] = scanner.value()
                scanner.skip_space()
                if scanner.peek() == ",":
                    scanner.pos += 1
                elif scanner.peek() != "]":
                    raise TemplateSyntaxError(f"expected ',' or ']' at offset {scanner.pos}")
            _add(template, key, vector)
        else:
            _add(template, key, scanner.value())


def parse_xml(text: str) -> Template:
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - input is from an authenticated client of a local test double
    except ElementTree.ParseError as exc:
        raise TemplateSyntaxError(f"invalid template XML: {exc}") from exc
    template: Template = {}
    for child in root:
        if len(child):
            _add(template, child.tag.upper(), {sub.tag.upper(): sub.text or "" for sub in child})
        else:
            _add(template, child.tag.upper(), child.text or "")
    return template

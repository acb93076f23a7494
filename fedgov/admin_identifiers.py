"""Identifier columns in the admin: a ledger seq, a tree size, an id read ungrouped.

``USE_THOUSAND_SEPARATOR`` groups every integer the admin shows ("12.345" in German),
which is right for a count and wrong for a name: seq 12345 is searched, cited and typed
as "12345" (docs/glossary.md, Numbers). Django formats a model field's integer by the
field's type, so a column listed in ``identifier_fields`` is shown through a callable
that prints the value as Python does, sorted by the same field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db.models import Model
from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    _Base = ModelAdmin[Any]
else:
    _Base = object


@cache
def identifier_column(model: type[Model], name: str) -> Callable[[Model], str | None]:
    """The column ``name`` of ``model`` as an ungrouped identifier (one callable per
    column, so list_display and list_display_links name the same object)."""
    field = model._meta.get_field(name)
    label = getattr(field, "verbose_name", name)

    def show(obj: Model) -> str | None:
        value = getattr(obj, name)
        return None if value is None else str(value)  # None: the admin's empty marker

    show.__name__ = name  # the cell's class stays "field-<name>"
    show.short_description = label  # type: ignore[attr-defined]
    show.admin_order_field = name  # type: ignore[attr-defined]
    return show


class IdentifierColumns(_Base):
    """ModelAdmin mixin: the names in ``identifier_fields`` show ungrouped in the list."""

    identifier_fields: tuple[str, ...] = ()

    def _ungrouped(self, names: Sequence[Any]) -> list[Any]:
        return [
            identifier_column(self.model, n)  # type: ignore[arg-type]  # a class is hashable
            if isinstance(n, str) and n in self.identifier_fields
            else n
            for n in names
        ]

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._ungrouped(super().get_list_display(request))

    def get_list_display_links(self, request: HttpRequest, list_display: Any) -> Any:
        links = super().get_list_display_links(request, list_display)
        return None if links is None else self._ungrouped(links)

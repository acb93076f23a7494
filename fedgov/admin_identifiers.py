"""Identifiers in the admin: a ledger seq, a tree size, an id read ungrouped.

``USE_THOUSAND_SEPARATOR`` groups every integer the admin shows ("12.345" in German),
which is right for a count and wrong for a name: seq 12345 is searched, cited and typed
as "12345" (docs/glossary.md, Numbers). Django formats a model field's integer by the
field's type, so a name listed in ``identifier_fields`` is shown through a callable
that prints the value as Python does: as a list column (sorted by the same field) and as
a read-only field of the change page (labelled and explained by the same field).
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
    """ModelAdmin mixin: the names in ``identifier_fields`` show ungrouped in the list and,
    where they are read-only, on the change page."""

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

    # The change page. Django formats a read-only model field by its type, but a callable
    # by its return value: each read-only identifier is swapped for its callable, in the
    # read-only fields and in the layout alike (the layout names what the page shows). An
    # identifier the page lets someone edit stays the field: its input is never grouped.

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._ungrouped(super().get_readonly_fields(request, obj))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # Django's own test for a view-only page, where every field is read-only.
        view_only = obj is not None and not self.has_change_permission(request, obj)
        readonly = set(self.get_readonly_fields(request, obj))

        def swap(name: Any) -> Any:
            if isinstance(name, list | tuple):  # several fields on one line
                return type(name)(swap(n) for n in name)
            if not (isinstance(name, str) and name in self.identifier_fields):
                return name
            shown = identifier_column(self.model, name)  # type: ignore[arg-type]
            return shown if view_only or shown in readonly else name

        return [
            (title, {**options, "fields": swap(options.get("fields", ()))})
            for title, options in fieldsets
        ]

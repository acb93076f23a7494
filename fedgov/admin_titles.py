"""The admin's "Add/Change/View/Select/Delete <model>" in the case each language needs.

Django's admin builds these titles as ``gettext("View %s") % verbose_name``: the model's
name in the nominative. Polish needs the accusative there ("Zobacz rundę", not "Zobacz
runda"; "Dodaj użytkownika"), German too for a noun made from an adjective
("Standortverantwortlichen hinzufügen"). Each such model gets its name in that case as a
message of its own (context "accusative"), whose English and, in most languages, whose
translation is the plain name. ``InflectedTitles`` puts it into Django's own sentences.

French titles read "Ajout de %s": before a vowel or a mute h the "de" elides ("Ajout
d'utilisateur", "Modification d'horodatage"), which Django's one msgid cannot say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.utils.text import capfirst
from django.utils.translation import get_language, gettext, pgettext_lazy

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    _Base = ModelAdmin[Any]
else:
    _Base = object

# Django's own msgids, translated by Django's catalogues. Through a name of their own so
# that our extraction does not copy them into fedgov's catalogue.
_django = gettext

# label_lower -> the model's name as the object of "add", "change", "view", "select".
ACCUSATIVE: dict[str, Any] = {
    "training.round": pgettext_lazy("accusative", "round"),
    "training.gatedecision": pgettext_lazy("accusative", "gate decision"),
    "sites.residencypolicy": pgettext_lazy("accusative", "residency policy"),
    "sites.consent": pgettext_lazy("accusative", "consent"),
    "sites.adequacylistversion": pgettext_lazy("accusative", "adequacy list version"),
    "sites.sitesteward": pgettext_lazy("accusative", "site steward"),
    "audit.legalhold": pgettext_lazy("accusative", "legal hold"),
    "dashboard.ledgerverification": pgettext_lazy("accusative", "ledger verification"),
    "auth.user": pgettext_lazy("accusative", "user"),
    "auth.group": pgettext_lazy("accusative", "group"),
    "axes.accessattempt": pgettext_lazy("accusative", "access attempt"),
    "axes.accessfailurelog": pgettext_lazy("accusative", "access failure"),
    "axes.accesslog": pgettext_lazy("accusative", "access log"),
}


# French nouns in our names that start with a mute h (elided: "d'horodatage"); an
# aspirated h keeps "de" ("de hachage"), so the h cannot be decided by its letter.
_FRENCH_MUTE_H = ("horodatage", "historique", "hôte", "hébergement", "habilitation")
_FRENCH_VOWELS = "aeiouyàâäéèêëîïôöùûüœæ"


def _elides_in_french(name: str) -> bool:
    word = name.strip().lower()
    return word[:1] in _FRENCH_VOWELS or word.startswith(_FRENCH_MUTE_H)


def _name_in(sentence: str, name: str) -> str:
    """Django's translated ``sentence`` with ``name`` in it, "de" elided where French
    needs it."""
    french = (get_language() or "").startswith("fr")
    if french and sentence.endswith(" de %s") and _elides_in_french(name):
        sentence = sentence[: -len("de %s")] + "d'%s"
    return sentence % name


def accusative(model: type[Model]) -> str:
    """``model``'s name as the object of a verb, in the active language."""
    name = ACCUSATIVE.get(model._meta.label_lower)
    return str(name if name is not None else model._meta.verbose_name)


class InflectedTitles(_Base):
    """ModelAdmin mixin: the change form's, list's and delete page's titles, and the list's
    add button, name the model in the accusative (``ACCUSATIVE``)."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        name = accusative(self.model)
        if object_id is None:
            title = _name_in(_django("Add %s"), name)
        else:
            from django.contrib.admin.utils import unquote

            obj = self.get_object(request, unquote(object_id))
            can_change = self.has_change_permission(request, obj)
            title = _name_in(_django("Change %s") if can_change else _django("View %s"), name)
        context = {"title": title, **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        name = accusative(self.model)
        can_change = self.has_change_permission(request)
        title = _django("Select %s to change") if can_change else _django("Select %s to view")
        context = {
            "title": title % name,
            # templates/admin/change_list_object_tools.html shows it on the add button.
            "add_label": capfirst(_name_in(_django("Add %s"), name)),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"object_name": accusative(self.model), **(extra_context or {})}
        return super().delete_view(request, object_id, context)

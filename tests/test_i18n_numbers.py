"""Numbers a person reads follow their language; machine formats stay neutral (issue 19).

Expected texts are written out per language, not computed with the code under test.
"""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.utils import translation

from fedgov.numbers import number
from training.gate.messages import render
from training.reasons import reason_in

NBSP = "\xa0"
# (count 12345, 0.7412 to two places, 1e-05 as written out) per language: Django's own
# grouping per locale (a no-break space in es, pl and fr).
EXPECTED = {
    "en": ("12,345", "0.74", "0.00001"),
    "de": ("12.345", "0,74", "0,00001"),
    "es": (f"12{NBSP}345", "0,74", "0,00001"),
    "pl": (f"12{NBSP}345", "0,74", "0,00001"),
    "fr": (f"12{NBSP}345", "0,74", "0,00001"),
}


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_number_groups_counts_and_uses_the_decimal_sign_of_the_language(lang):
    count, decimal, small = EXPECTED[lang]
    with translation.override(lang):
        assert number(12345) == count
        assert number(0.7412, 2) == decimal
        assert number(1e-05, significant=4) == small
        assert number(999) == "999"  # below a thousand nothing is grouped


def test_number_rounds_as_python_formats_rather_than_cutting_digits():
    # Django's number_format cuts 3.18895 to "3.1889"; every other page shows "3.1890".
    with translation.override("en"):
        assert number(3.18896, 4) == f"{3.18896:.4f}" == "3.1890"
        assert number(0.745, 2) == f"{0.745:.2f}"


def test_a_bool_is_not_a_number():
    with pytest.raises(TypeError):
        number(True)


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_templates_group_counts_but_not_ids_marked_unlocalize(lang):
    count, decimal, _small = EXPECTED[lang]
    with translation.override(lang):
        page = Template("{% load l10n %}{{ n }}|{{ f }}|{{ n|unlocalize }}").render(
            Context({"n": 12345, "f": 0.5})
        )
    assert page == f"{count}|0{decimal[1]}5|12345"


SPENT = {
    "spent": 1.2345678,
    "this_round": 0.5,
    "after": 1.7345678,
    "limit": 9.0,
    "delta": 1e-05,
    "method": "rdp",
    "relation": "add-or-remove-one",
    "z": 1.1,
}


@pytest.mark.parametrize(
    ("lang", "figures"),
    [
        ("en", "ε=1.235 + this round 0.5 = 1.735 of 9 at δ=0.00001"),
        ("de", "ε=1,235 + diese Runde 0,5 = 1,735 von 9 bei δ=0,00001"),
        ("pl", "ε=1,235 + ta runda 0,5 = 1,735 z 9 przy δ=0,00001"),
    ],
)
def test_a_reasons_numbers_are_rendered_for_the_reader(lang, figures):
    assert figures in reason_in(lang, "privacy.spent", SPENT, "fallback")


def test_the_stored_reason_keeps_pythons_numbers_whatever_the_reader():
    # The English text the gate stores (and hashes) never depends on a reader's format.
    with translation.override("de"):
        stored = render({"code": "privacy.spent", "params": SPENT})
    assert "ε=1.235 + this round 0.5 = 1.735 of 9 at δ=1e-05" in stored


def test_counts_in_a_reason_are_grouped_but_a_policy_version_is_not():
    counts = {"records": 12345, "subjects": 12000, "other": 345, "needed": 1000}
    assert reason_in("de", "min_records", counts).startswith("12.345 ")
    assert "1.000" in reason_in("de", "min_records", counts)
    assert "v1234" in reason_in("de", "residency.policy_unpublished", {"version": 1234})

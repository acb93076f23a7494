"""The split field validators behave exactly as the ones they replaced.

``site_validate``, ``dataset_validate`` and the consent row parser were each one long
function; they are now small named checks. Their verbatim former versions live in
tests/sites/legacy_validators.py. Each test here runs old and new over many mutated
inputs (every field set to every hostile value, then seeded random multi-field mutations)
and requires the same outcome: the same normalised values, or the same fields with the
same reasons in the same order, or the same exception.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import re

import pytest

from fedgov.errors import InvalidInput
from sites.choices import SiteStatus
from sites.services.consent import _parse_consent_rows, _RowNames
from sites.services.datasets import dataset_validate
from sites.services.sites import site_validate
from tests.factories import DatasetFactory, PurposeFactory, SiteFactory, sha
from tests.sites import legacy_validators as legacy

TODAY = dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
RANDOM_CASES = 300

# Values every field gets at least once: wrong types, empties, extremes, near misses.
HOSTILE = [
    None,
    "",
    " ",
    0,
    -1,
    2**63,
    1.5,
    True,
    False,
    [],
    {},
    ["x"],
    "x" * 300,
    "2026-13-01",
    "2026-06-01",
    "2026-06-01T12:00:00Z",
    "2026-06-01T12:00:00",
    dt.date(2026, 6, 1),
    "<script>",
    "é",
    "\x00",
]


def outcome(function, *args, **kwargs):
    """What a validator did: its normalised values, its errors in order, or its crash."""
    try:
        result = function(*args, **kwargs)
    except InvalidInput as exc:
        return ("invalid", [(field, list(reasons)) for field, reasons in exc.errors.items()])
    except Exception as exc:  # a crash must be the same crash
        return ("raised", type(exc).__name__, str(exc))
    return ("ok", result)


def mutations(base, extra_values, seed):
    """Single-field mutations with every hostile and field-specific value, then random
    mutations of two to five fields at once."""
    fields = sorted(set(base) | set(extra_values))
    for field in fields:
        for value in [*HOSTILE, *extra_values.get(field, [])]:
            yield {**base, field: value}
        removed = dict(base)
        removed.pop(field, None)
        yield removed
    rng = random.Random(seed)
    for _ in range(RANDOM_CASES):
        case = dict(base)
        for field in rng.sample(fields, rng.randint(2, min(5, len(fields)))):
            case[field] = rng.choice([*HOSTILE, *extra_values.get(field, [])])
        yield case


# ------------------------------------------------------------------------------ sites

SITE = {
    "slug": "es-blogs",
    "organisation": "Blogs S.L.",
    "country": "ES",
    "contact_email": "dpo@blogs.example",
    "agreement_type": "processor",
    "agreement_document_hash": sha("dpa"),
    "agreement_valid_from": "2026-01-01",
    "agreement_valid_until": "2026-12-31",
    "compute_country": "ES",
    "one_zone_endpoint": "http://zone.example:2633/RPC2",
    "one_zone_id": 0,
    "one_credentials_ref": "env:ONE_AUTH",
    "one_template_id": 3,
    "supernode_public_key": "",
    "flower_node_id": "",
    "zone_operator": "",
    "zone_operator_country": "",
    "zone_operator_role": "",
}
SITE_VALUES = {
    "slug": ["taken", "a" * 65, "a" * 64, "with space", "Ünï"],
    "country": ["DE", "XX", "de", "US"],
    "compute_country": ["US", "ZZ"],
    "contact_email": ["not-an-email", "a@b"],
    "agreement_type": ["controller", "joint_controller", "nope"],
    "agreement_document_hash": [sha("x").upper(), "ab" * 31, "g" * 64],
    "agreement_valid_from": ["2027-01-01", "2025-01-01"],
    "agreement_valid_until": ["2025-12-31", "2026-01-01"],
    "one_zone_endpoint": ["ftp://zone", "https://zone.example/RPC2", "zone:2633"],
    "one_zone_id": [5, "5"],
    "one_credentials_ref": ["file:/etc/one_auth", "oneadmin:secret", "env:"],
    "one_template_id": [0, "7"],
    "supernode_public_key": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"],
    "flower_node_id": ["n" * 32, "n" * 33],
    "zone_operator": ["Acme Cloud Inc.", "Blogs S.L.", " Blogs S.L. "],
    "zone_operator_country": ["US", "ES", "XX"],
    "zone_operator_role": ["processor", "joint_controller", "boss"],
}


@pytest.mark.django_db
def test_site_validate_matches_the_former_validator():
    existing = SiteFactory(slug="taken")
    compared = 0
    for case in mutations(SITE, SITE_VALUES, seed=11):
        for instance in (None, existing):
            old = outcome(legacy.old_site_validate, copy.deepcopy(case), instance=instance)
            new = outcome(site_validate, copy.deepcopy(case), instance=instance)
            assert new == old, (case, instance)
            compared += 1
    assert compared > 1000


# --------------------------------------------------------------------------- datasets

DATASET_VALUES = {
    "name": ["Corpus", " Corpus ", "taken", "n" * 201],
    "data_categories": [
        ["text"],
        ["health"],
        [" text ", "health"],
        ["criminal-convictions-and-offences"],
        ["text", ""],
        ("text",),
    ],
    "special_category": [True, False],
    "art9_condition": ["explicit_consent", "scientific_research", "nope"],
    "art10_basis": ["official_authority", "union_or_member_state_law", "nope"],
    "art10_reference": ["Act 12/2020", "r" * 301],
    "lawful_basis": ["consent", "legitimate_interest", "nope"],
    "retention_until": ["2027-01-01", "2020-01-01"],
    "processing_countries": [["EEA"], ["DE", "FR"], ["XX"], "EEA"],
    "record_count": [0, 10, -5],
    "description": ["about", 3],
}


@pytest.mark.django_db
def test_dataset_validate_matches_the_former_validator():
    active = SiteFactory(slug="de-legal")
    suspended = SiteFactory(slug="pl-news", status=SiteStatus.SUSPENDED)
    purpose, other = PurposeFactory(code="topics"), PurposeFactory(code="ads")
    legacy_dataset = DatasetFactory(site=active, name="taken", purposes=[purpose])
    base = {
        "name": "Corpus",
        "description": "",
        "data_categories": ["text"],
        "special_category": False,
        "art9_condition": "",
        "art10_basis": "",
        "art10_reference": "",
        "lawful_basis": "consent",
        "purposes": [purpose],
        "retention_until": "2027-01-01",
        "processing_countries": ["EEA"],
        "record_count": 10,
    }
    values = {
        **DATASET_VALUES,
        "purposes": [[purpose, other], [purpose, purpose], [other], ["topics"], [None]],
    }
    compared = 0
    for case in mutations(base, values, seed=12):
        for site, instance in ((active, None), (suspended, None), (active, legacy_dataset)):
            old = outcome(legacy.old_dataset_validate, dict(case), site=site, instance=instance)
            new = outcome(dataset_validate, dict(case), site=site, instance=instance)
            assert new == old, (case, site.slug, instance)
            compared += 1
    assert compared > 1000


# ---------------------------------------------------------------------------- consent

EVENT = {
    "subject_pseudonym": "subj-001",
    "purpose": "topics",
    "kind": "grant",
    "occurred_at": "2026-05-01T10:00:00Z",
    "expires_at": "2027-05-01T10:00:00Z",
}
EVENT_VALUES = {
    "subject_pseudonym": ["subj-002", "someone@example.org", "p" * 129, "a:b+c/d="],
    "purpose": ["ads", "unknown"],
    "kind": ["withdraw", "revoke"],
    "occurred_at": ["2026-06-01T12:04:00Z", "2026-06-01T12:06:00Z", "2026-05-01T10:00:00"],
    "expires_at": ["2026-05-01T10:00:00Z", "2026-04-01T10:00:00Z", "soon"],
    "extra": ["x"],
}


def _texts(problems: dict, repeats: bool = False) -> list:
    """A row's reasons by field as text; the former "repeats row N" as now written."""
    found = []
    for field, reasons in problems.items():
        texts = [str(r) for r in reasons]
        if repeats:
            texts = [re.sub(r"^repeats row (\d+)$", r"repeats events[\1]", t) for t in texts]
        found.append((field, texts))
    return found


@pytest.mark.django_db
def test_consent_row_parser_matches_the_former_parser():
    purposes = {"topics": PurposeFactory(code="topics"), "ads": PurposeFactory(code="ads")}
    cases = list(mutations(EVENT, EVENT_VALUES, seed=13))
    # Batches: each case alone, next to a valid row and a copy of itself (repeats), and
    # seeded random batches that mix objects, non-objects and repeated rows.
    batches = [[case] for case in cases]
    batches += [[EVENT, case, dict(case)] for case in cases]
    rng = random.Random(14)
    for _ in range(RANDOM_CASES):
        batch = rng.sample(cases, rng.randint(1, 6)) + [EVENT] * rng.randint(0, 3)
        batch += rng.sample(["not an object", 3, None, []], rng.randint(0, 2))
        rng.shuffle(batch)
        batches.append(batch)
    for batch in batches:
        old = outcome(legacy.old_parse_consent_rows, copy.deepcopy(batch), purposes, NOW)
        new = outcome(
            _parse_consent_rows, copy.deepcopy(batch), purposes, NOW, _RowNames(lines=None)
        )
        assert new[0] == old[0], (batch, old, new)
        if old[0] == "ok":
            (old_rows, old_bad), (new_rows, new_bad) = old[1], new[1]
            # Row order, rows and each refused row's fields in their order. The parser now
            # keys rows by index and names a repeated one as a JSON client reads it.
            assert new_rows == old_rows, batch
            assert [(str(i), _texts(p)) for i, p in new_bad.items()] == [
                (i, _texts(p, repeats=True)) for i, p in old_bad.items()
            ], batch
        else:
            assert new == old, batch
    assert len(batches) > 500

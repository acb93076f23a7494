"""Hostile input gets a 400 naming the field and the reason, and nothing is written.

Each case here once gave a 500 or cost memory out of proportion: deep JSON, integers past
a column's range, non-ASCII digits, oversized uploads.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import io
import json
import pkgutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.errors import InvalidInput
from fedgov.parsers import MAX_JSON_DEPTH, BoundedJSONParser, nesting_exceeds, read_body
from fedgov.validation import int_from_text
from sites.models import ConsentEvent
from tests.factories import DatasetFactory, PolicyFactory, PurposeFactory, RunFactory
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keys(settings, tmp_path):
    settings.FEDGOV_KEY_DIR = tmp_path / "keys"
    settings.FEDGOV_SIGNING_KEY_FILE = ""


@pytest.fixture
def as_operator(api, make_user):
    return api(make_user(roles.OPERATOR, username="op"))


@pytest.fixture
def csv_dataset():
    # The purpose the fuzzed rows name most often, so some uploads get past the purpose check.
    return DatasetFactory(purposes=[PurposeFactory(code="topic")])


@pytest.fixture
def as_dpo(api, make_user):
    return api(make_user(roles.DPO, username="dpo-h"))


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# --------------------------------------------------------------------------- JSON depth


@pytest.mark.parametrize("levels", [100_000, 1_000, MAX_JSON_DEPTH + 1])
def test_deeply_nested_json_is_a_400_naming_the_body(as_operator, levels):
    before = TrainingRun.objects.count()
    response = as_operator.post("/api/v1/runs", deep(levels), content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert "nests more than" in response.json()["body"][0]
    assert TrainingRun.objects.count() == before


def test_deep_json_in_a_consent_upload_is_a_400_and_records_nothing(as_dpo):
    dataset = DatasetFactory()
    body = '[{"subject_pseudonym": ' + deep(100_000) + "}]"
    response = as_dpo.post(
        f"/api/v1/datasets/{dataset.pk}/consent-events", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "body" in response.json()
    assert not ConsentEvent.objects.exists()


def test_json_at_the_depth_limit_still_parses():
    body = deep(MAX_JSON_DEPTH).encode()
    parsed = BoundedJSONParser().parse(io.BytesIO(body), parser_context={})
    assert not nesting_exceeds(parsed, MAX_JSON_DEPTH)
    with pytest.raises(InvalidInput):
        BoundedJSONParser().parse(io.BytesIO(b"[" + body + b"]"), parser_context={})


def test_nesting_counts_objects_and_lists_alike():
    assert not nesting_exceeds({"a": [{"b": 1}]}, 3)
    assert nesting_exceeds({"a": [{"b": []}]}, 3)
    assert not nesting_exceeds("scalar", 0)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_outside_rfc_8259_are_refused(as_operator, constant):
    response = as_operator.post(
        "/api/v1/runs", f'{{"num_rounds": {constant}}}', content_type="application/json"
    )
    assert response.status_code == 400


# --------------------------------------------------------------------------- body size


def test_a_body_over_the_limit_is_refused_by_its_declared_length_before_parsing(as_dpo, settings):
    settings.FEDGOV_API_MAX_BODY_BYTES = 2_000
    dataset = DatasetFactory()
    # A header that is wrong on purpose: had the body been parsed, the reply would name it.
    csv_body = "not,the,header\n" + "x,y,z\n" * 1_000
    response = as_dpo.post(
        f"/api/v1/datasets/{dataset.pk}/consent-events", csv_body, content_type="text/csv"
    )
    assert response.status_code == 400
    assert response.json() == {"body": [f"is {len(csv_body):,} bytes; at most 2,000 are accepted"]}
    assert not ConsentEvent.objects.exists()
    assert not LedgerEntry.objects.filter(event_type__startswith="consent").exists()


class CountingStream(io.BytesIO):
    """A body whose sender declared no length (chunked): counts what the parser reads."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_a_body_without_a_length_is_read_only_one_byte_past_the_limit(settings):
    settings.FEDGOV_API_MAX_BODY_BYTES = 1_000
    stream = CountingStream(b"x" * 50_000)
    with pytest.raises(InvalidInput) as caught:
        read_body(stream, parser_context={})
    assert stream.bytes_read == 1_001
    assert "at most 1,000" in caught.value.errors["body"][0]


def test_a_csv_with_more_rows_than_a_batch_allows_is_refused_while_parsing(as_dpo, monkeypatch):
    monkeypatch.setattr("sites.serializers.MAX_CONSENT_BATCH", 3)
    dataset = DatasetFactory()
    rows = "".join(f"s{i},p,grant,2026-01-05T09:00:00Z,\n" for i in range(10))
    body = "subject_pseudonym,purpose,kind,occurred_at,expires_at\n" + rows
    response = as_dpo.post(
        f"/api/v1/datasets/{dataset.pk}/consent-events", body, content_type="text/csv"
    )
    assert response.status_code == 400
    assert response.json() == {"events": ["at most 3 events per upload"]}
    assert not ConsentEvent.objects.exists()


# --------------------------------------------------------------------------- integers


def test_num_rounds_beyond_the_column_is_a_400_naming_the_field(as_operator):
    purpose = PurposeFactory()
    dataset = DatasetFactory(purposes=[purpose])
    policy = PolicyFactory()
    body = {
        "name": "huge",
        "purpose": purpose.code,
        "datasets": [dataset.pk],
        "policy": policy.pk,
        "aggregator_country": "DE",
        "num_rounds": 10**30,
    }
    response = as_operator.post("/api/v1/runs", body, format="json")
    assert response.status_code == 400
    assert "num_rounds" in response.json()
    assert not TrainingRun.objects.filter(name="huge").exists()


def _project_serializers() -> list[type[serializers.Serializer]]:
    import fedgov.urls  # noqa: F401  (registers the URL converters route modules use)

    found = []
    for package in ("sites", "training", "audit", "dashboard", "fedgov"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if ".migrations" in info.name or ".management" in info.name:
                continue
            if info.name.rsplit(".", 1)[-1] in {"standin", "__main__"}:
                continue
            try:
                module = importlib.import_module(info.name)
            except ImportError:  # flwr-only or optional modules: not API code
                continue
            for _name, obj in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(obj, serializers.Serializer)
                    and obj.__module__ == module.__name__
                    and not inspect.isabstract(obj)
                ):
                    found.append(obj)
    return found


def test_every_integer_a_client_can_send_has_an_upper_bound():
    """The adversary's sweep: any writable integer without a maximum overflows a column."""
    unbounded = []
    checked = 0
    for serializer_class in _project_serializers():
        for name, field in serializer_class().fields.items():
            if isinstance(field, serializers.IntegerField) and not field.read_only:
                checked += 1
                if field.max_value is None:
                    unbounded.append(
                        f"{serializer_class.__module__}.{serializer_class.__name__}.{name}"
                    )
    assert checked >= 5, "the sweep found almost no integer fields: it is not looking"
    assert unbounded == []


@pytest.mark.parametrize(
    "query", ["dataset=1000000000000000000000000000000", "policy=99999999999999999999"]
)
def test_filters_with_integers_past_64_bits_are_a_400(as_operator, query):
    response = as_operator.get(f"/api/v1/runs?{query}")
    assert response.status_code == 400, response.content[:200]


# --------------------------------------------------------------------------- digits


@pytest.mark.parametrize("text", ["²", "٣", "１", "1²", "", "-1", "+1", " 1", "1_000"])
def test_only_ascii_digits_are_a_number(text):
    with pytest.raises(InvalidInput) as caught:
        int_from_text(text, field="n", minimum=1)
    assert list(caught.value.errors) == ["n"]


def test_a_number_of_a_million_digits_is_refused_without_converting_it():
    with pytest.raises(InvalidInput) as caught:
        int_from_text("9" * 1_000_000, field="n")
    assert "at most" in caught.value.errors["n"][0]


def test_a_superscript_digit_in_a_path_is_a_400(as_operator):
    run = RunFactory()
    response = as_operator.get(f"/api/v1/runs/{run.pk}/rounds/²/decision")
    assert response.status_code == 400
    assert "round_no" in response.json()


def test_a_round_number_past_the_column_is_a_400(as_operator):
    run = RunFactory()
    response = as_operator.get(f"/api/v1/runs/{run.pk}/rounds/{10**30}/decision")
    assert response.status_code == 400
    assert response.json()["round_no"] == [f"must be at most {2**31 - 1}"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/ledger/inclusion?seq=²&size=1", "seq"),
        ("/api/v1/ledger/consistency?from=1&to=٣", "to"),
        ("/api/v1/reports/lineage?dataset=²", "dataset"),
        (f"/api/v1/reports/lineage?dataset={10**30}", "dataset"),
    ],
)
def test_non_ascii_or_huge_numbers_in_query_strings_are_a_400(api, make_user, path, field):
    client = api(make_user(roles.DPO, roles.LEGAL, username="reader"))
    response = client.get(path)
    assert response.status_code == 400, response.content[:200]
    assert field in response.json()


def test_api_still_reads_ordinary_json(as_operator):
    response = as_operator.post("/api/v1/runs", json.dumps({}), content_type="application/json")
    assert response.status_code == 400
    assert "name" in response.json()


def _filtered_list_endpoints() -> list[tuple[str, str]]:
    """Every (path, filter name) of a list endpoint that takes django-filter parameters."""
    from django.urls import URLPattern, URLResolver, get_resolver

    found = []

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern).strip("^$"))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern).strip("^$")
                if "<" in route or "(?P" in route or not route.startswith("api/v1/"):
                    continue
                view = getattr(p.callback, "cls", None)
                filterset = getattr(view, "filterset_class", None)
                if filterset is None:
                    continue
                path = "/" + route
                found.extend((path, name) for name in filterset.base_filters)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


@pytest.mark.parametrize("value", [str(10**30), "²", "-" + str(10**30), "1e999"])
def test_no_filter_on_any_list_endpoint_answers_a_hostile_value_with_a_5xx(api, make_user, value):
    client = api(
        make_user(roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR, username="everyone")
    )
    endpoints = _filtered_list_endpoints()
    assert len(endpoints) >= 20, endpoints
    failures = []
    for path, name in endpoints:
        response = client.get(path, {name: value})
        # 200 (nothing matches) or 400 (refused); a 404 would mean the sweep lost its way.
        if response.status_code not in (200, 400):
            failures.append(f"{path}?{name}= -> {response.status_code}")
    assert failures == []


# --------------------------------------------------------------------------- exports

PAYLOADS = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "+1+cmd", "\t=1+1", "\r=1+1"]  # fmt: skip


@pytest.mark.parametrize("view", ["controller", "processor"])
def test_art30_csv_neutralises_formulas_and_json_keeps_the_text_as_typed(api, make_user, view):
    import csv

    from tests.factories import SiteFactory

    purpose = PurposeFactory(code="topic", name=PAYLOADS[1])
    sites = [
        SiteFactory(slug=f"s{i}", organisation=text, contact_email=f"dpo{i}@example.org")
        for i, text in enumerate(PAYLOADS)
    ]
    datasets = [
        DatasetFactory(site=site, name=f"d{i}", purposes=[purpose]) for i, site in enumerate(sites)
    ]
    RunFactory(name=PAYLOADS[2], purpose=purpose, datasets=datasets, aggregator_country="DE")
    legal = api(make_user(roles.LEGAL, username="legal-h"))

    body = legal.get("/api/v1/reports/art30", {"view": view, "output": "csv"})
    assert body.status_code == 200
    cells = [c for row in csv.reader(io.StringIO(body.content.decode("utf-8-sig"))) for c in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == []
    # The neutralised organisation names are there, each shown as text.
    assert {"'" + p for p in PAYLOADS} & set(cells)

    as_json = legal.get("/api/v1/reports/art30", {"view": view, "output": "json"}).json()
    shown = json.dumps(as_json["activities"], ensure_ascii=False)
    assert all(json.dumps(p)[1:-1] in shown for p in PAYLOADS)


# --------------------------------------------------------------------------- CSV fuzzing

CSV_HEADER_LINE = "subject_pseudonym,purpose,kind,occurred_at,expires_at"
# Cells that look almost right: the parser and the service must refuse or take each cleanly.
CELLS = st.one_of(
    st.sampled_from(
        ["grant", "withdraw", "topic", "2026-01-05T09:00:00Z", "2026-13-45T99:00:00Z",
         "", '"', '""', "\x00", "=1+1", "²", "9" * 400, "s-1", "\ufeff", "a\nb", ";", ","]
    ),
    st.text(max_size=30),
)  # fmt: skip
ROWS = st.lists(st.lists(CELLS, min_size=0, max_size=7), max_size=8)


def _csv_text(header: str, rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    return header + "\n" + out.getvalue()


@given(
    header=st.one_of(st.just(CSV_HEADER_LINE), st.text(max_size=60)),
    rows=ROWS,
    raw_tail=st.binary(max_size=40),
)
# One upload that must be taken, so the accepting branch is always exercised too.
@example(
    header=CSV_HEADER_LINE,
    rows=[["s-1", "topic", "grant", "2026-01-05T09:00:00Z", ""]],
    raw_tail=b"",
)
# Function-scoped fixtures are shared by the examples, which is what this wants: each
# example compares row counts before and after its own request.
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_csv_upload_is_taken_whole_or_refused_whole_never_a_5xx(
    as_dpo, csv_dataset, header, rows, raw_tail
):
    body = _csv_text(header, rows).encode("utf-8", "surrogatepass") + raw_tail
    events_before = ConsentEvent.objects.count()
    entries_before = LedgerEntry.objects.count()

    response = as_dpo.post(
        f"/api/v1/datasets/{csv_dataset.pk}/consent-events", body, content_type="text/csv"
    )

    assert response.status_code in (201, 400), response.content[:300]
    if rows == [["s-1", "topic", "grant", "2026-01-05T09:00:00Z", ""]] and not raw_tail:
        assert response.status_code == 201, response.content[:300]
    if response.status_code == 400:
        assert response.json(), "a refusal says why"
        assert ConsentEvent.objects.count() == events_before
        assert LedgerEntry.objects.count() == entries_before
    else:
        assert ConsentEvent.objects.count() == events_before + len(rows)

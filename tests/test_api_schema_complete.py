"""The OpenAPI schema describes every API view: none is dropped with a W002 warning."""

from __future__ import annotations

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from reports import art30
from reports.choices import ReportFile


@pytest.fixture(scope="module")
def schema_and_warnings():
    GENERATOR_STATS.reset()
    GENERATOR_STATS.enable_trace_lineno()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return schema, dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)


def test_schema_generation_warns_about_nothing(schema_and_warnings):
    _, warnings, errors = schema_and_warnings
    assert not errors, list(errors)
    assert not warnings, list(warnings)


def test_documented_report_choices_are_the_ones_the_views_accept(schema_and_warnings):
    schema, _, _ = schema_and_warnings

    def enum(path, name):
        params = schema["paths"][path]["get"]["parameters"]
        return next(sorted(p["schema"]["enum"]) for p in params if p["name"] == name)

    assert enum("/api/v1/reports/art30", "view") == sorted(art30.VIEWS)
    assert enum("/api/v1/reports/art30", "output") == sorted(art30.FORMATS)
    assert enum("/api/v1/reports/{public_id}/download", "file") == sorted(ReportFile.values)

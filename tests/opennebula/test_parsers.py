"""Pure parts: template syntax, requirements, placement check, credentials, zone files."""

from __future__ import annotations

import pytest

from opennebula import template_syntax
from opennebula.credentials import resolve
from opennebula.errors import OpenNebulaError
from opennebula.placement import placement_violations
from opennebula.provisioner import requirements_for
from opennebula.standin import config, requirements
from training.ports import Placement


def test_template_render_and_parse_round_trip_with_quotes_and_vectors():
    original = {
        "NAME": 'say "hi" \\ bye',
        "CONTEXT": {"ONEAPP_FL_SUPERLINK_ADDRESS": "10.0.0.1:9092", "KEY": "a,b=c]"},
    }
    assert template_syntax.parse(template_syntax.render(original)) == original


def test_template_parse_reads_repeated_vectors_bare_values_and_xml():
    parsed = template_syntax.parse("CPU=1\nDISK=[IMAGE_ID=3]\nDISK=[IMAGE_ID=4] # two disks\n")
    assert parsed == {"CPU": "1", "DISK": [{"IMAGE_ID": "3"}, {"IMAGE_ID": "4"}]}
    xml = "<TEMPLATE><CPU>1</CPU><CONTEXT><A>b</A></CONTEXT></TEMPLATE>"
    assert template_syntax.parse(xml) == {"CPU": "1", "CONTEXT": {"A": "b"}}


@pytest.mark.parametrize("text", ['A = "open', "A = [ B = 1", "= 3", "A B"])
def test_template_parse_refuses_broken_text(text):
    with pytest.raises(template_syntax.TemplateSyntaxError):
        template_syntax.parse(text)


@pytest.mark.parametrize(
    ("expression", "attrs", "expected"),
    [
        ('COUNTRY = "DE" | COUNTRY = "FR"', {"COUNTRY": "FR"}, True),
        ('COUNTRY = "DE" | COUNTRY = "FR"', {"COUNTRY": "US"}, False),
        ('COUNTRY = "DE"', {}, False),
        ('COUNTRY != "US" & !(NAME = "bad*")', {"COUNTRY": "DE", "NAME": "good-1"}, True),
        ('COUNTRY != "US" & !(NAME = "bad*")', {"COUNTRY": "DE", "NAME": "bad-1"}, False),
        ("FREE_CPU > 100", {"FREE_CPU": "200"}, True),
        ('PCI @> "gpu"', {"PCI": "nic, gpu"}, True),
        ("", {}, True),
    ],
)
def test_requirement_expressions_evaluate_like_oned(expression, attrs, expected):
    assert requirements.parse(expression)(attrs) is expected


@pytest.mark.parametrize("expression", ["COUNTRY =", '(COUNTRY = "DE"', 'COUNTRY = "DE" DE'])
def test_broken_requirement_expressions_are_refused(expression):
    with pytest.raises(requirements.RequirementSyntaxError):
        requirements.parse(expression)


def test_requirements_for_lists_only_allowed_countries():
    expression = requirements_for({"FR", "DE"})
    assert expression == 'COUNTRY = "DE" | COUNTRY = "FR"'
    assert requirements.parse(expression)({"COUNTRY": "DE"})
    with pytest.raises(ValueError):
        requirements_for({'DE" | COUNTRY = "US'})


def _placement(host="DE", cluster="DE", datastore="DE") -> Placement:
    return Placement(0, 1, "h", host, "c", cluster, "d", datastore)


def test_placement_check_needs_every_label_inside_the_allowed_set():
    assert placement_violations(_placement(), frozenset({"DE"})) == []
    assert placement_violations(_placement(datastore="CH"), frozenset({"DE"})) == [
        "datastore d is in CH, outside the allowed countries"
    ]
    assert placement_violations(_placement(cluster=""), frozenset({"DE"})) == [
        "cluster c has no COUNTRY label"
    ]


def test_credentials_resolve_from_env_and_file_and_errors_hide_content(monkeypatch, tmp_path):
    monkeypatch.setenv("ONE_CREDS", "alice:pw1")
    assert resolve("env:ONE_CREDS").session == "alice:pw1"
    assert "pw1" not in repr(resolve("env:ONE_CREDS"))
    secret = tmp_path / "creds"
    secret.write_text("bob:pw2\n")
    assert resolve(f"file:{secret}").password == "pw2"
    secret.write_text("no-colon-pw3")
    with pytest.raises(OpenNebulaError) as bad:
        resolve(f"file:{secret}")
    assert "pw3" not in str(bad.value) and bad.value.permanent
    for ref in ("plain", "env:", "file:relative", "env:ONE_MISSING_VAR"):
        with pytest.raises(OpenNebulaError):
            resolve(ref)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "non-empty 'zones'"),
        ({"zones": [{"id": 0}]}, "missing field 'port'"),
        ({"zones": [{"id": 0, "port": 1, "credentials_ref": "pw"}]}, "credentials_ref"),
        (
            {
                "zones": [
                    {
                        "id": 0, "name": "z", "port": 1, "credentials_ref": "env:X",
                        "clusters": [], "hosts": [{"id": 0, "name": "h", "cluster": 5}],
                        "datastores": [],
                    }
                ]
            },
            "cluster 5 is not defined",
        ),
    ],
)  # fmt: skip
def test_bad_zone_files_are_refused_with_the_field(data, message):
    with pytest.raises(config.ZoneConfigError, match=message):
        config.parse(data)

"""``manage.py token``: service and steward tokens that reach the API, listed and revoked
with a ledger event each, keys never in the ledger."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from audit.models import LedgerEntry
from tests.factories import SiteFactory


def run(*args) -> str:
    out = io.StringIO()
    call_command("token", *args, stdout=out)
    return out.getvalue()


def key_of(output: str) -> str:
    return output.split("token (shown once): ")[1].strip()


@pytest.mark.django_db
def test_a_service_token_reaches_the_flower_api_and_a_revoked_one_does_not(client):
    output = run("create", "--role", "service", "--username", "serverapp")
    key = key_of(output)
    url = "/api/v1/flower/public-key"
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    created = LedgerEntry.objects.get(event_type="token.created")
    assert key not in created.payload and json.loads(created.payload)["role"] == "Service"

    listing = run("list")
    assert "serverapp\tService" in listing and key not in listing
    assert LedgerEntry.objects.filter(event_type="token.listed").count() == 1

    run("revoke", "serverapp")
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {key}").status_code in (401, 403)
    assert LedgerEntry.objects.filter(event_type="token.revoked").count() == 1


@pytest.mark.django_db
def test_a_steward_token_acts_for_its_site_only():
    site = SiteFactory(slug="de-legal")
    output = run("create", "--steward", "de-legal")
    assert "token-de-legal" in output
    payload = json.loads(LedgerEntry.objects.get(event_type="token.created").payload)
    assert payload["site_id"] == site.pk and payload["role"] == "Site steward"
    assert "site=de-legal" in run("list")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [("create", "--steward", "nowhere"), ("revoke", "nobody"), ("create",)],
)
def test_refusals_exit_with_a_reason_and_write_nothing(args):
    with pytest.raises(CommandError):
        run(*args)
    assert not LedgerEntry.objects.filter(event_type__startswith="token.").exists()

"""Admin columns that name something (ledger seq, tree size, policy version, round number,
zone and VM ids) read ungrouped in every language; counts beside them stay grouped
(issue 19; docs/glossary.md, Numbers)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import formats, translation

from audit.models import LedgerEntry
from dashboard.models import LedgerVerification
from fedgov import clock
from opennebula.models import Workload
from tests.factories import RunFactory, SiteFactory, UserFactory, login_verified
from training.choices import RoundState
from training.models import Round

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    def make(lang: str) -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE=lang)
        user = UserFactory(username=f"su-{lang}", is_staff=True, is_superuser=True)
        login_verified(client, user)
        return client

    return make


def cell(html: str, name: str) -> list[str]:
    """The texts of the list's cells for column ``name`` (Django's ``field-<name>`` class)."""
    found = re.findall(rf'<t[dh] class="field-{name}[^"]*">(?:<a [^>]*>)?([^<]*)', html)
    return [t.strip() for t in found]


@pytest.mark.parametrize("lang", ["en", "de", "es", "pl", "fr"])
def test_verification_list_shows_sizes_and_seqs_ungrouped_and_counts_grouped(admin_client, lang):
    user = UserFactory(username=f"v-{lang}")
    now = clock.now()
    LedgerVerification.objects.create(
        started_at=now - timedelta(seconds=1),
        finished_at=now,
        ok=False,
        size=12345,
        checkpoints=12345,
        first_bad_seq=12001,
        requested_by=user,
        requested_by_name=user.username,
    )
    html = admin_client(lang).get("/admin/dashboard/ledgerverification/").content.decode()
    assert cell(html, "size") == ["12345"]
    # Still the field's column: its label, sortable by the field.
    assert 'class="sortable column-size' in html
    assert "?o=2." in html.split("column-size")[1].split("</th>")[0]
    assert cell(html, "first_bad_seq") == ["12001"]
    # A count is a number a person reads: grouped as their language groups it.
    with translation.override(lang):
        grouped = formats.number_format(12345, use_l10n=True, force_grouping=True)
    assert cell(html, "checkpoints") == [grouped]
    assert grouped != "12345"


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_round_list_shows_the_round_number_ungrouped_and_still_links_it(admin_client, lang):
    run = RunFactory(num_rounds=5000)
    round_ = Round.objects.create(run=run, number=1234, state=RoundState.PLANNED)
    html = admin_client(lang).get("/admin/training/round/").content.decode()
    assert cell(html, "number") == ["1234"]
    assert f'href="/admin/training/round/{round_.pk}/change/' in html.split("field-number")[1]


@pytest.mark.parametrize("lang", ["de", "fr"])
def test_workload_list_shows_zone_and_vm_ids_ungrouped(admin_client, lang):
    site = SiteFactory(slug=f"w-{lang}")
    Workload.objects.create(
        site=site,
        site_slug=site.slug,
        run=RunFactory(),
        zone_id=1001,
        zone_endpoint="http://127.0.0.1:1/RPC2",
        vm_id=23456,
        state="running",
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    html = admin_client(lang).get("/admin/opennebula/workload/").content.decode()
    assert cell(html, "zone_id") == ["1001"]
    assert cell(html, "vm_id") == ["23456"]


def readonly(html: str, name: str) -> str:
    """The text of the change page's read-only field ``name`` (Django's ``field-<name>``)."""
    block = html.split(f"field-{name}", 1)[1]
    found = re.search(r'<div class="readonly">([^<]*)</div>', block)
    assert found, f"no read-only field {name}"
    return found.group(1).strip()


def test_ledger_entry_page_shows_its_seq_and_actor_id_ungrouped_in_german(admin_client):
    # Straight into the table: only the page is under test, not the chain (inserts are
    # what the ledger's triggers allow).
    LedgerEntry.objects.create(
        seq=12345,
        event_type="round.gated",
        actor_id=23456,
        actor_repr="user:dpo",
        subject_type="round",
        subject_id="7",
        created_at=clock.now(),
        payload="{}",
        leaf_hash=b"\x00" * 32,
    )
    html = admin_client("de").get("/admin/audit/ledgerentry/12345/change/").content.decode()
    assert readonly(html, "seq") == "12345"
    assert readonly(html, "actor_id") == "23456"
    assert "12.345" not in html and "23.456" not in html
    # Still the field's row: its German label.
    with translation.override("de"):
        label = str(LedgerEntry._meta.get_field("seq").verbose_name)
    assert label != "seq" and label in html.split("field-seq", 1)[1].split("</label>")[0]


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_verification_page_shows_identifiers_ungrouped_and_counts_grouped(admin_client, lang):
    user = UserFactory(username=f"vp-{lang}")
    now = clock.now()
    verification = LedgerVerification.objects.create(
        started_at=now - timedelta(seconds=1),
        finished_at=now,
        ok=False,
        size=12345,
        checkpoints=12345,
        trusted_keys=2,
        first_bad_seq=12001,
        ledger_seq=13002,
        requested_by=user,
        requested_by_name=user.username,
    )
    url = f"/admin/dashboard/ledgerverification/{verification.pk}/change/"
    html = admin_client(lang).get(url).content.decode()
    assert readonly(html, "size") == "12345"
    assert readonly(html, "first_bad_seq") == "12001"
    assert readonly(html, "ledger_seq") == "13002"
    with translation.override(lang):
        grouped = formats.number_format(12345, use_l10n=True, force_grouping=True)
    assert grouped != "12345"
    assert readonly(html, "checkpoints") == grouped


@pytest.mark.parametrize(("lang", "yes", "no"), [("de", "Ja", "Nein"), ("pl", "Tak", "Nie")])
def test_ledger_list_redaction_filter_reads_in_the_readers_language(admin_client, lang, yes, no):
    html = admin_client(lang).get("/admin/audit/ledgerentry/").content.decode()
    choices = html.split('id="changelist-filter"', 1)[1]
    assert f'href="?redacted=yes">{yes}</a>' in choices.replace("\n", "")
    assert f'href="?redacted=no">{no}</a>' in choices.replace("\n", "")

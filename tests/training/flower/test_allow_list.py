"""The site trains only on the subjects the gate allowed (Art. 6(1)(a), 7), end to end.

The gate stores the allow-list; the signed ticket carries its digest and size; the site
fetches the list with its own token and refuses to train when the list does not match.
"""

from __future__ import annotations

import datetime as dt

import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from rest_framework.authtoken.models import Token

from fedgov import roles
from fedgov.actors import Actor
from fedgov_flower.client_mod import AllowListFetcher, make_governance_mod
from fedgov_flower.ticket import TicketRefused, TicketSite, exclusion_digest, parse_unverified
from sites.models import Consent, SiteSteward
from tests.training.flower.conftest import governed_scenario
from tests.training.flower.inprocess import FakeGovernance, StaticExclusions, site_context
from training.flower.client_app import build_app
from training.flower.model import get_arrays, load_site_data, make_model
from training.models import Round, SiteEligibility
from training.services.flower import round_allowed, round_ticket_issue
from training.services.gate import round_gate

ACTOR = Actor.system("tests")
RUN_ID = 7
SITE = TicketSite(1, "de-legal", "1000", exclusion_digest([]), 0)
ALLOWED = [f"de-legal-s{n:04d}" for n in (1, 2, 3)]


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def _message(ticket):
    arrays = ArrayRecord({k: Array(v) for k, v in get_arrays(make_model()).items()})
    config = ConfigRecord({"server-round": 1, "local-epochs": 1, **ticket.to_config()})
    return Message(
        content=RecordDict({"arrays": arrays, "config": config}),
        message_type="train",
        dst_node_id=1000,
    )


def _reply(governance, served: list[str], monkeypatch):
    """Train once at de-legal with ``served`` as the list fedgov's API returns."""
    seen = []
    real = load_site_data

    def spy(*args, **kwargs):
        seen.append(kwargs.get("allowed"))
        return real(*args, **kwargs)

    monkeypatch.setattr("training.flower.client_app.load_site_data", spy)
    mod = make_governance_mod(
        fetcher=StaticExclusions({}),
        allowed_fetcher=StaticAllowed(served),
    )
    context = site_context(1000, 1, "de-legal", RUN_ID, governance.public_key_b64)
    return build_app(mod)(_message(governance.sign(1)), context), seen


class StaticAllowed(StaticExclusions):
    def __init__(self, names):
        super().__init__({"de-legal": names})
        self.names = names

    def get(self, *, run_id, round_no, slug, digest):
        # Serve what fedgov's API would serve, and check it like the real fetcher does.
        if exclusion_digest(self.names) != digest:
            raise TicketRefused("allowed_mismatch", "fetched list does not match the ticket")
        return frozenset(self.names)


def test_site_trains_only_on_the_allowed_subjects(monkeypatch):
    governance = FakeGovernance(RUN_ID, [SITE], allowed={"de-legal": ALLOWED})
    reply, seen = _reply(governance, ALLOWED, monkeypatch)
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    assert seen == [frozenset(ALLOWED)]
    metrics = reply.content.metric_records["metrics"]
    every = load_site_data("de-legal", frozenset())
    only = load_site_data("de-legal", frozenset(), allowed=frozenset(ALLOWED))
    assert 0 < only.records_used < every.records_used
    assert metrics["records-used"] == only.records_used


@pytest.mark.parametrize(
    "served",
    [[*ALLOWED, "de-legal-s0099"], ALLOWED[:2], []],
    ids=["one-more", "one-fewer", "empty"],
)
def test_site_refuses_to_train_when_its_list_does_not_match_the_ticket(served, monkeypatch):
    governance = FakeGovernance(RUN_ID, [SITE], allowed={"de-legal": ALLOWED})
    reply, seen = _reply(governance, served, monkeypatch)
    assert reply.has_error()
    assert "allowed_mismatch" in reply.error.reason
    assert seen == []  # no local data was read


def test_a_site_without_consent_based_data_gets_no_list_and_uses_every_record(monkeypatch):
    governance = FakeGovernance(RUN_ID, [SITE])
    reply, seen = _reply(governance, ALLOWED, monkeypatch)
    assert not reply.has_error()
    assert seen == [None]


@pytest.mark.django_db(transaction=True)
def test_ticket_carries_the_gates_allow_list_and_the_site_fetches_it_with_its_token(
    live_server, make_user, tmp_path
):
    run, sites, _ = governed_scenario(subjects=5)
    es = sites[1]
    # Consent granted after the round's instant is not valid yet: not on the list.
    Consent.objects.filter(subject_pseudonym="es-blogs-s0005").update(
        granted_at=Consent.objects.get(subject_pseudonym="es-blogs-s0005").granted_at.replace(
            year=2999
        )
    )
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    assert decision.outcome == "allowed", decision.reason
    round_ = Round.objects.get(run=run, number=1)
    Round.objects.filter(pk=round_.pk).update(state="placement_verified")
    ticket_row = round_ticket_issue(actor=ACTOR, round=round_)
    ticket = parse_unverified(ticket_row.body, ticket_row.signature, ticket_row.key_id)
    named = ticket.site_by_slug("es-blogs")
    elig = SiteEligibility.objects.get(decision=decision, site=es)
    expected = [f"es-blogs-s{n:04d}" for n in range(1, 5)]
    assert (elig.allowed_count, elig.allowed_digest) == (4, exclusion_digest(expected))
    assert (named.allowed_digest, named.allowed_count) == (exclusion_digest(expected), 4)

    steward = make_user(roles.SITE_STEWARD, username="steward-es")
    SiteSteward.objects.create(user=steward, site=es)
    token = Token.objects.create(user=steward).key
    fetcher = AllowListFetcher(live_server.url, token, tmp_path)
    got = fetcher.get(run_id=run.pk, round_no=1, slug="es-blogs", digest=named.allowed_digest)
    assert sorted(got) == expected
    # The same steward cannot read another site's list.
    other = ticket.site_by_slug("de-legal")
    with pytest.raises(TicketRefused) as refused:
        AllowListFetcher(live_server.url, token, tmp_path / "x").get(
            run_id=run.pk, round_no=1, slug="de-legal", digest=other.allowed_digest
        )
    assert refused.value.code == "allowed_unavailable"


@pytest.mark.django_db
def test_the_fetch_refuses_a_list_changed_after_the_gate():
    """The ticket signs the gate's digest; the list is built at fetch time from the gate's
    instant, and a consent row changed behind the services since then is not handed out."""
    run, sites, _ = governed_scenario(subjects=3)
    decision = round_gate(actor=ACTOR, run=run, round_no=1)
    round_ = Round.objects.get(run=run, number=1)
    Round.objects.filter(pk=round_.pk).update(state="placement_verified")
    ticket_row = round_ticket_issue(actor=ACTOR, round=round_)
    ticket = parse_unverified(ticket_row.body, ticket_row.signature, ticket_row.key_id)
    elig = SiteEligibility.objects.get(decision=decision, site=sites[0])
    assert ticket.site_by_slug("de-legal").allowed_digest == elig.allowed_digest
    Consent.objects.filter(subject_pseudonym="de-legal-s0002").update(
        granted_at=decision.evaluated_at + dt.timedelta(seconds=1)
    )
    from fedgov.errors import TransitionNotAllowed

    with pytest.raises(TransitionNotAllowed, match="no longer matches"):
        round_allowed(round=round_, site=sites[0])

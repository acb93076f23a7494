"""A site fetches its exclusion list over HTTP only when the ticket's digest changed."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from fedgov import roles
from fedgov_flower.client_mod import ExclusionFetcher
from fedgov_flower.ticket import TicketRefused, exclusion_digest
from sites.models import SiteSteward
from tests.factories import RoundFactory
from tests.training.flower.conftest import gate_round
from training.choices import RoundState

pytestmark = pytest.mark.django_db(transaction=True)

HUNDRED_THOUSAND = [f"es-blogs-s{n:06d}" for n in range(100_000)]


@pytest.fixture
def steward_token(three_sites, make_user):
    steward = make_user(roles.SITE_STEWARD, username="steward-es")
    SiteSteward.objects.create(user=steward, site=three_sites[1])
    return Token.objects.create(user=steward).key


def test_site_fetches_100000_pseudonyms_once_and_then_uses_its_cache(
    three_sites, steward_token, live_server, tmp_path
):
    round_ = RoundFactory(number=1, state=RoundState.APPROVED)
    gate_round(round_, three_sites, excluded={"es-blogs": HUNDRED_THOUSAND})
    fetcher = ExclusionFetcher(live_server.url, steward_token, tmp_path)
    digest = exclusion_digest(HUNDRED_THOUSAND)

    first = fetcher.get(run_id=round_.run_id, round_no=1, slug="es-blogs", digest=digest)
    again = fetcher.get(run_id=round_.run_id, round_no=1, slug="es-blogs", digest=digest)

    assert len(first) == 100_000 and first == again
    assert fetcher.fetches == 1


def test_site_refetches_when_the_digest_changes_and_refuses_a_list_that_does_not_match(
    three_sites, steward_token, live_server, tmp_path
):
    round_ = RoundFactory(number=1, state=RoundState.APPROVED)
    gate_round(round_, three_sites, excluded={"es-blogs": ["es-blogs-s0001"]})
    fetcher = ExclusionFetcher(live_server.url, steward_token, tmp_path)
    fetcher.get(
        run_id=round_.run_id,
        round_no=1,
        slug="es-blogs",
        digest=exclusion_digest(["es-blogs-s0001"]),
    )
    with pytest.raises(TicketRefused) as refused:
        fetcher.get(
            run_id=round_.run_id,
            round_no=1,
            slug="es-blogs",
            digest=exclusion_digest(["es-blogs-s0001", "es-blogs-s0002"]),
        )
    assert refused.value.code == "exclusions_mismatch"
    assert fetcher.fetches == 2


def test_site_without_token_cannot_read_exclusions(three_sites, live_server, tmp_path):
    round_ = RoundFactory(number=1, state=RoundState.APPROVED)
    gate_round(round_, three_sites, excluded={"es-blogs": ["es-blogs-s0001"]})
    fetcher = ExclusionFetcher(live_server.url, "not-a-token", tmp_path)
    with pytest.raises(TicketRefused) as refused:
        fetcher.get(
            run_id=round_.run_id,
            round_no=1,
            slug="es-blogs",
            digest=exclusion_digest(["es-blogs-s0001"]),
        )
    assert refused.value.code == "exclusions_unavailable"


def test_empty_exclusion_list_needs_no_fetch(tmp_path):
    fetcher = ExclusionFetcher("", "", tmp_path)
    assert fetcher.get(run_id=1, round_no=1, slug="x", digest=exclusion_digest([])) == frozenset()
    assert fetcher.fetches == 0

"""The site's client mod: no signed fedgov ticket naming this site, no training.

It runs on the ClientApp before any handler, so before any local data is read. It checks
the ticket's Ed25519 signature against fedgov's public key, the run, the round, the expiry
and that the ticket names this site; it then loads the round's exclusion list and, when
the ticket carries one, the allow-list of the only subjects it may train on (each fetched
from fedgov with the site's token only when the ticket's digest changed, and refused when
it does not match the signed digest and count), and hands the handler a ``Grant``. A
refused message gets an error reply and the handler never runs.

Node config keys (``flower-supernode --node-config``), each also readable from the env:
``fedgov-site-id`` / ``FEDGOV_SITE_ID``, ``fedgov-site`` / ``FEDGOV_SITE``,
``fedgov-public-key`` / ``FEDGOV_PUBLIC_KEY`` (base64 raw key or PEM),
``fedgov-api`` / ``FEDGOV_API``, ``fedgov-token-file`` / ``FEDGOV_SITE_TOKEN`` (a token),
``fedgov-cache-dir`` / ``FEDGOV_CACHE_DIR``.
"""

from __future__ import annotations

import contextvars
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord

from fedgov_flower.site_policy import SitePolicy
from fedgov_flower.ticket import (
    CONFIG_BODY,
    CONFIG_KEY_ID,
    CONFIG_SIGNATURE,
    Ticket,
    TicketRefused,
    exclusion_digest,
    load_public_key,
    verify_ticket,
)
from fedgov_flower.used_tickets import UsedTickets
from fedgov_flower.values import as_int

log = logging.getLogger("fedgov.flower.site")

# Error codes in refusal replies; the strategy logs them with the reason.
REFUSAL_CODE = 4030
# The one message the mod lets through without a ticket: "which site are you?".
IDENTIFY = "query.fedgov_identify"
STATE_KEY = "fedgov"
_grant: contextvars.ContextVar[Grant | None] = contextvars.ContextVar("fedgov_grant", default=None)


@dataclass
class Grant:
    """What a verified ticket lets the handler do: which site, which subjects to leave out
    and, for consent-based data, the only subjects it may use (``allowed``; None: no list).

    The handler states what it used with ``use(subjects, left_out=...)`` (the filter
    helpers of ``fedgov_flower.data`` do it for it): the mod then reports the counts, the
    digest of the list it filtered by and the digest of the subjects it actually used,
    and fedgov refuses a round whose filter digest is not the ticket's.
    """

    ticket: Ticket
    site_id: int
    site_slug: str
    excluded: frozenset[str]
    allowed: frozenset[str] | None = None
    records_used: int = 0
    records_excluded: int = 0
    counted: bool = field(default=False, repr=False)
    subjects_digest: str = ""
    subjects_used: int = 0

    def count(self, *, used: int, excluded: int) -> None:
        self.records_used, self.records_excluded, self.counted = used, excluded, True

    @property
    def filter_digest(self) -> str:
        """The digest of the list this grant filters by: the allow-list, else exclusions."""
        return exclusion_digest(self.allowed if self.allowed is not None else self.excluded)

    def permits(self, subject: str) -> bool:
        """Whether records of ``subject`` may be used under this ticket."""
        if subject in self.excluded:
            return False
        return self.allowed is None or subject in self.allowed

    def use(self, subjects: Iterable[str], *, records: int, left_out: int) -> None:
        """Declare the subjects of the ``records`` used (``left_out`` records were not).

        Raises ``PermissionError`` if a subject is one the ticket does not permit: the
        reply is then refused and nothing leaves the site.
        """
        distinct = set(subjects)
        bad = sorted(s for s in distinct if not self.permits(s))
        if bad:
            raise PermissionError(
                f"{len(bad)} subject(s) used that the ticket does not permit (first: {bad[0]})"
            )
        self.subjects_digest = exclusion_digest(distinct)
        self.subjects_used = len(distinct)
        self.count(used=records, excluded=left_out)


def current_grant() -> Grant:
    """The grant of the message being handled; raises if the mod did not admit it."""
    grant = _grant.get()
    if grant is None:
        raise PermissionError("no verified fedgov ticket for this message")
    return grant


def _setting(context: Context, key: str, env: str, default: str = "") -> str:
    value = context.node_config.get(key)
    if value is None or value == "":
        value = os.environ.get(env, default)
    return str(value)


class ExclusionFetcher:
    """Fetches a round's exclusion list from fedgov and caches it by digest on disk."""

    # The API path segment, the cache file prefix and the refusal codes' prefix.
    LIST = "exclusions"

    def __init__(self, api_url: str, token: str, cache_dir: Path, timeout: float = 60.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.fetches = 0

    def _cached(self, digest: str) -> frozenset[str] | None:
        path = self.cache_dir / f"{self.LIST}-{digest}.txt"
        if not path.exists():
            return None
        names = path.read_text(encoding="utf-8").splitlines()
        return frozenset(names) if exclusion_digest(names) == digest else None

    def get(self, *, run_id: int, round_no: int, slug: str, digest: str) -> frozenset[str]:
        """The pseudonyms whose digest is ``digest``; raises ``TicketRefused`` otherwise."""
        if digest == exclusion_digest([]):
            return frozenset()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        if not self.api_url or not self.token:
            raise TicketRefused(f"{self.LIST}_unavailable", "no fedgov API or site token set")
        try:
            response = requests.get(
                f"{self.api_url}/api/v1/runs/{run_id}/rounds/{round_no}/{self.LIST}",
                params={"site": slug},
                headers={"Authorization": f"Token {self.token}"},
                timeout=self.timeout,
            )
            response.raise_for_status()
            names = list(response.json()["pseudonyms"])
        except (requests.RequestException, KeyError, ValueError, TypeError) as exc:
            raise TicketRefused(
                f"{self.LIST}_unavailable", f"cannot fetch {self.LIST}: {exc}"
            ) from exc
        self.fetches += 1
        if exclusion_digest(names) != digest:
            raise TicketRefused(f"{self.LIST}_mismatch", "fetched list does not match the ticket")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves a half list that a later round trusts.
        with tempfile.NamedTemporaryFile(
            "w", dir=self.cache_dir, delete=False, encoding="utf-8"
        ) as handle:
            handle.write("\n".join(sorted(names)))
        os.replace(handle.name, self.cache_dir / f"{self.LIST}-{digest}.txt")
        return frozenset(names)


class AllowListFetcher(ExclusionFetcher):
    """Fetches a round's allow-list: the only subjects the site may train on."""

    LIST = "allowed"


def _refuse(msg: Message, code: str, reason: str) -> Message:
    log.warning("refused %s message: %s (%s)", msg.metadata.message_type, reason, code)
    return Message(Error(code=REFUSAL_CODE, reason=f"fedgov:{code}: {reason}"), reply_to=msg)


# Where the reply tells the strategy what the handler used (strings; MetricRecords hold
# numbers only, and FedAvg would average them).
REPLY_RECORD = "fedgov"
CONSENT_HELP = (
    "this site's dataset is consent-based: the ticket allows only {count} subjects, and an "
    "app that cannot tell subjects apart would train on everyone. Give each record a "
    "subject id, filter with fedgov_flower.data (filter_records, filter_dataset or "
    "filter_frame on current_grant()), and build the ClientApp's mods with "
    "fedgov_flower.mods(subject_aware=True); see docs/byo-flower-app.md"
)


def run_setting(context: Context, name: str) -> str:
    """fedgov's run-config value ``name``: ``fedgov.<name>`` (namespaced, for any app) or
    the demo app's older ``fedgov-<name>``; "" when neither is set."""
    for key in (f"fedgov.{name}", f"fedgov-{name}"):
        value = context.run_config.get(key)
        if value is not None and str(value) != "":
            return str(value)
    return ""


# The mod is a sequence of guard clauses, one per refusal a site must make before its data
# is read (run id, ticket, message type, reuse, site policy, allow-list); each is one
# branch, so its complexity counts refusals, not nesting.
def make_governance_mod(  # noqa: C901
    *,
    public_keys: Mapping[str, Ed25519PublicKey] | Ed25519PublicKey | None = None,
    fetcher: ExclusionFetcher | None = None,
    allowed_fetcher: ExclusionFetcher | None = None,
    now: Callable[[], datetime] | None = None,
    subject_aware: bool = True,
    used_store: UsedTickets | None = None,
    site_policy: SitePolicy | None = None,
) -> Callable[[Message, Context, Callable[[Message, Context], Message]], Message]:
    """Build the mod; arguments override node config (tests pass keys and a clock).

    ``subject_aware`` says the app filters its records by subject (through ``Grant.use``
    or ``fedgov_flower.data``); an app that cannot is refused on consent-based data.
    ``used_store`` and ``site_policy`` default to the files the node config names.
    """

    def governance_mod(  # noqa: C901
        msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
    ) -> Message:
        if msg.metadata.message_type == IDENTIFY:
            # Registration reads node config only, never data: it needs no ticket.
            return call_next(msg, context)
        config = msg.content.config_records.get("config") if msg.has_content() else None
        if config is None or CONFIG_BODY not in config:
            return _refuse(msg, "no_ticket", "the message carries no fedgov ticket")
        kind = msg.metadata.message_type.split(".", 1)[0]
        try:
            site_id = int(_setting(context, "fedgov-site-id", "FEDGOV_SITE_ID", "0"))
            site_slug = _setting(context, "fedgov-site", "FEDGOV_SITE")
            keys = public_keys
            if keys is None:
                key_text = _setting(context, "fedgov-public-key", "FEDGOV_PUBLIC_KEY")
                if not key_text:
                    raise TicketRefused("no_public_key", "fedgov's public key is not configured")
                keys = load_public_key(key_text)
            run_text = run_setting(context, "run-id")
            if not run_text or int(run_text) <= 0:
                # Without the run it was started for, any run's ticket would do.
                raise TicketRefused(
                    "no_run_id", "the Flower run carries no fedgov run id (fedgov.run-id)"
                )
            # governed() puts fedgov's round beside Flower's own server-round.
            round_no = as_int(config.get("fedgov.round", config.get("server-round", 0)))
            ticket = verify_ticket(
                body=str(config[CONFIG_BODY]),
                signature=str(config.get(CONFIG_SIGNATURE, "")),
                key_id=str(config.get(CONFIG_KEY_ID, "")),
                public_keys=keys,
                run_id=int(run_text),
                round_no=round_no,
                site_id=site_id,
                now=now() if now else None,
                message_type=kind,
                flower_run_id=msg.metadata.run_id,
            )
            state = context.state.config_records.get(STATE_KEY)
            last = as_int(state.get("last-trained-round", 0)) if state else 0
            is_train = kind == "train"
            if is_train and ticket.round_no <= last:
                raise TicketRefused(
                    "replayed_round", f"round {ticket.round_no} follows trained round {last}"
                )
            named = ticket.site(site_id)
            assert named is not None  # verify_ticket checked it
            if site_slug and named.slug != site_slug:
                raise TicketRefused("site_not_named", f"ticket names {named.slug}, not {site_slug}")
            policy = site_policy
            if policy is None:
                policy_path = _setting(context, "fedgov-site-policy", "FEDGOV_SITE_POLICY")
                policy = SitePolicy.load(policy_path) if policy_path else SitePolicy()
            policy.check(ticket)
            if named.allowed_digest and not subject_aware:
                raise TicketRefused(
                    "consent_needs_subjects", CONSENT_HELP.format(count=named.allowed_count)
                )
            api_url = _setting(context, "fedgov-api", "FEDGOV_API")
            cache = (
                Path(_setting(context, "fedgov-cache-dir", "FEDGOV_CACHE_DIR", "var/site-cache"))
                / named.slug
            )
            source = fetcher or ExclusionFetcher(api_url, _site_token(context), cache)
            excluded = source.get(
                run_id=ticket.run_id,
                round_no=ticket.round_no,
                slug=named.slug,
                digest=named.exclusion_digest,
            )
            allowed = None
            if named.allowed_digest:
                allowed_source = allowed_fetcher or AllowListFetcher(
                    api_url, _site_token(context), cache
                )
                allowed = allowed_source.get(
                    run_id=ticket.run_id,
                    round_no=ticket.round_no,
                    slug=named.slug,
                    digest=named.allowed_digest,
                )
                if len(allowed) != named.allowed_count:
                    raise TicketRefused(
                        "allowed_mismatch",
                        f"the allow-list has {len(allowed)} subjects, the ticket "
                        f"{named.allowed_count}",
                    )
            # Claimed last, just before the data is read: a refusal above spends nothing,
            # and a crash from here on still counts as the ticket's one use.
            store = used_store or UsedTickets(
                Path(_setting(context, "fedgov-state-dir", "FEDGOV_STATE_DIR", str(cache.parent)))
                / named.slug
                / "used-tickets.txt"
            )
            store.claim(ticket.ticket_id)
        except TicketRefused as refused:
            return _refuse(msg, refused.code, str(refused))
        except (ValueError, TypeError, OSError) as exc:
            return _refuse(msg, "malformed", str(exc))

        grant = Grant(
            ticket=ticket,
            site_id=site_id,
            site_slug=named.slug,
            excluded=excluded,
            allowed=allowed,
        )
        token = _grant.set(grant)
        try:
            reply = call_next(msg, context)
        except PermissionError as exc:
            # Grant.use found a subject the ticket does not permit: nothing leaves the site.
            return _refuse(msg, "subject_not_permitted", str(exc))
        finally:
            _grant.reset(token)
        if is_train:
            context.state[STATE_KEY] = ConfigRecord({"last-trained-round": ticket.round_no})
        if reply.has_error() or not reply.has_content():
            return reply
        if allowed is not None and not grant.subjects_digest:
            # The handler read consent-based data without saying which subjects it used.
            return _refuse(msg, "consent_needs_subjects", CONSENT_HELP.format(count=len(allowed)))
        if grant.counted:
            # The mod, not the handler, states how many records the ticket let it use.
            metrics = reply.content.metric_records.get("metrics") or MetricRecord()
            metrics["records-used"] = grant.records_used
            metrics["records-excluded"] = grant.records_excluded
            reply.content["metrics"] = metrics
            reply.content[REPLY_RECORD] = ConfigRecord(
                {
                    "filter-digest": grant.filter_digest,
                    "subjects-digest": grant.subjects_digest,
                    "subjects-used": grant.subjects_used,
                }
            )
        return reply

    return governance_mod


def _site_token(context: Context) -> str:
    path = _setting(context, "fedgov-token-file", "FEDGOV_SITE_TOKEN_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return os.environ.get("FEDGOV_SITE_TOKEN", "")


governance_mod = make_governance_mod()

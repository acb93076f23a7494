"""fedgov's own Prometheus metrics, read from the database at scrape time, and /metrics.

A collector (rather than counters bumped in services) keeps the figures true across
processes: the API, Celery workers and the demo all write the same tables, and any
process serving /metrics reports the whole system. django-prometheus adds the request,
response and database metrics of the process that serves the scrape.

Labels carry round states, rule ids and site slugs only: no person, no pseudonym.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Iterator

import prometheus_client
from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from fedgov import clock


class FedgovCollector(Collector):
    """Rounds by state, gate decisions and failures, ledger size, checkpoint freshness.

    With ``show_sites=False`` gate failures are summed per rule under ``site="*"``: which
    site fails which GDPR rule is not for an anonymous reader.
    """

    def __init__(self, *, show_sites: bool = True) -> None:
        self.show_sites = show_sites

    def describe(self) -> Iterator[Metric]:
        # Without describe() the registry calls collect() on registration, i.e. queries
        # the database while apps load (before migrations, on every management command).
        yield GaugeMetricFamily("fedgov_rounds", "Rounds by state", labels=["state"])
        yield CounterMetricFamily("fedgov_gate_decisions", "", labels=["outcome"])
        yield CounterMetricFamily("fedgov_gate_failures", "", labels=["rule", "site"])
        yield GaugeMetricFamily("fedgov_ledger_entries", "")
        yield GaugeMetricFamily("fedgov_ledger_unsigned_entries", "")
        yield GaugeMetricFamily("fedgov_checkpoint_age_seconds", "")
        yield GaugeMetricFamily("fedgov_opennebula_zone_breaker_open", "", labels=ZONE_LABELS)
        yield GaugeMetricFamily("fedgov_opennebula_zone_unanswered_calls", "", labels=ZONE_LABELS)
        yield CounterMetricFamily("fedgov_opennebula_zone_breaker_opened", "", labels=ZONE_LABELS)

    def collect(self) -> Iterator[Metric]:
        # Imported here: the collector is registered before the app registry is ready.
        from audit.models import Checkpoint, TreeHead
        from training.choices import RoundState
        from training.models import GateDecision, GateResult, Round

        rounds = GaugeMetricFamily("fedgov_rounds", "Rounds by state", labels=["state"])
        counts = dict(Round.objects.values_list("state").annotate(n=Count("id")))
        for state in RoundState.values:
            rounds.add_metric([state], counts.get(state, 0))
        yield rounds

        # Gate evidence is append-only, so these only grow: counters, fit for rate().
        decisions = CounterMetricFamily(
            "fedgov_gate_decisions", "Gate decisions by outcome", labels=["outcome"]
        )
        for outcome, n in (
            GateDecision.objects.order_by().values_list("outcome").annotate(n=Count("id"))
        ):
            decisions.add_metric([outcome], n)
        yield decisions

        failures = CounterMetricFamily(
            "fedgov_gate_failures",
            "Failed gate rule results, by rule and site, over all decisions",
            labels=["rule", "site"],
        )
        failed = GateResult.objects.filter(ok=False).order_by()
        if self.show_sites:
            rows = failed.values_list("rule_id", "site_slug").annotate(n=Count("id"))
            for rule_id, site_slug, n in rows:
                failures.add_metric([rule_id, site_slug or "(round)"], n)
        else:
            for rule_id, n in failed.values_list("rule_id").annotate(n=Count("id")):
                failures.add_metric([rule_id, "*"], n)
        yield failures

        # The tree head holds the size: one row read, not a count over the whole ledger.
        size = TreeHead.objects.filter(pk=1).values_list("size", flat=True).first() or 0
        entries = GaugeMetricFamily("fedgov_ledger_entries", "Entries in the audit ledger")
        entries.add_metric([], size)
        yield entries

        latest = Checkpoint.objects.order_by("-size").values_list("size", "created_at").first()
        unsigned = GaugeMetricFamily(
            "fedgov_ledger_unsigned_entries",
            "Ledger entries not yet covered by a signed checkpoint",
        )
        unsigned.add_metric([], size - (latest[0] if latest else 0))
        yield unsigned

        age = GaugeMetricFamily(
            "fedgov_checkpoint_age_seconds",
            "Seconds since the latest signed ledger checkpoint (-1: none yet)",
        )
        age.add_metric([], _checkpoint_age(latest[1] if latest else None))
        yield age
        yield from _zone_breakers()


ZONE_LABELS = ["endpoint", "zone"]


def _zone_breakers() -> Iterator[Metric]:
    """Dead OpenNebula zones (issue 15): opennebula/breaker.py."""
    from opennebula.selectors import zone_breakers

    is_open = GaugeMetricFamily(
        "fedgov_opennebula_zone_breaker_open",
        "1 while the zone's circuit breaker is open (calls fail fast)",
        labels=ZONE_LABELS,
    )
    unanswered = GaugeMetricFamily(
        "fedgov_opennebula_zone_unanswered_calls",
        "Calls in a row the zone did not answer",
        labels=ZONE_LABELS,
    )
    opened = CounterMetricFamily(
        "fedgov_opennebula_zone_breaker_opened",
        "Times the zone's circuit breaker opened",
        labels=ZONE_LABELS,
    )
    for b in zone_breakers():
        labels = [b.zone_endpoint, str(b.zone_id)]
        is_open.add_metric(labels, 1 if b.open else 0)
        unanswered.add_metric(labels, b.consecutive_failures)
        opened.add_metric(labels, b.times_opened)
    yield is_open
    yield unanswered
    yield opened


def _checkpoint_age(created_at) -> float:
    if created_at is None:
        return -1.0
    return max(0.0, (clock.now() - created_at).total_seconds())


_collector: FedgovCollector | None = None
_lock = threading.Lock()


def register(registry: CollectorRegistry = prometheus_client.REGISTRY) -> FedgovCollector:
    """Register fedgov's collector once per process; later calls return the same one."""
    global _collector
    with _lock:
        if _collector is None:
            _collector = FedgovCollector()
            registry.register(_collector)
        return _collector


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition, behind the bearer token ``FEDGOV_METRICS_TOKEN``.

    Outside DEBUG the token is required: with none configured, nobody can scrape. Under
    DEBUG without a token, anyone can, but sees no site slugs.

    Under a multi-process server (``PROMETHEUS_MULTIPROC_DIR``) django-prometheus's own
    view would build a fresh registry without fedgov's collector; this one adds it.
    """
    token = getattr(settings, "FEDGOV_METRICS_TOKEN", "") or ""
    if not token:
        if not settings.DEBUG:
            return HttpResponse(
                "metrics are off: set FEDGOV_METRICS_TOKEN and scrape with that bearer token\n",
                status=403,
                content_type="text/plain",
            )
        anonymous = CollectorRegistry()
        anonymous.register(FedgovCollector(show_sites=False))
        return HttpResponse(
            prometheus_client.generate_latest(anonymous),
            content_type=prometheus_client.CONTENT_TYPE_LATEST,
        )
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("metrics need a bearer token\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(FedgovCollector())
    else:
        register()
        registry = prometheus_client.REGISTRY
    return HttpResponse(
        prometheus_client.generate_latest(registry),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )

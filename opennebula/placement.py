"""The placement check: the second residency gate, after compute starts, before any data.

Pure: it compares the ``COUNTRY`` labels of the host, cluster and datastore a VM landed on
with the countries the residency policy allows. A missing label fails (deny by default).
"""

from __future__ import annotations

from training.ports import Placement


def placement_violations(placement: Placement, allowed: frozenset[str]) -> list[str]:
    """Human reasons why ``placement`` breaks residency; empty when it is allowed."""
    reasons = []
    for kind, name, country in (
        ("host", placement.host, placement.host_country),
        ("cluster", placement.cluster, placement.cluster_country),
        ("datastore", placement.datastore, placement.datastore_country),
    ):
        if not country:
            reasons.append(f"{kind} {name} has no COUNTRY label")
        elif country not in allowed:
            reasons.append(f"{kind} {name} is in {country}, outside the allowed countries")
    return reasons

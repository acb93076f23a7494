"""The address a login attempt came from, as the nearest trusted reverse proxy saw it.

Behind ``FEDGOV_TRUSTED_PROXIES`` proxies (docs/deployment.md) REMOTE_ADDR is the proxy's
own address, the same for everybody; the client is then the entry that many places from
the right of X-Forwarded-For (each proxy appends the address it received from). Entries
further left are written by the client itself and never trusted. With no proxy, or a
header shorter than the proxy count (a request that bypassed a proxy), REMOTE_ADDR.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    proxies = getattr(settings, "FEDGOV_TRUSTED_PROXIES", 0)
    remote = request.META.get("REMOTE_ADDR")
    if proxies <= 0:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if len(hops) < proxies:
        return remote
    return hops[-proxies]

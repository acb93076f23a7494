"""A VM's identity: which oned served it (its endpoint), the zone id there, and the VM id.

Every standalone oned calls itself zone 0 (``oned.conf`` ``FEDERATION/ZONE_ID`` defaults
to 0), so the zone id alone never tells two installations apart; the endpoint does. The
identity is the endpoint normalised so that spellings of one URL compare equal.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_identity(endpoint: str) -> str:
    """``scheme://host:port/path`` in lower case with the port made explicit.

    Raises ``ValueError`` for anything but an http(s) URL with a host.
    """
    parts = urlsplit(endpoint.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{endpoint!r} is not an http(s) URL with a host")
    port = parts.port or _DEFAULT_PORTS[scheme]
    path = parts.path.rstrip("/") or "/"
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    return f"{scheme}://{host}:{port}{path}"

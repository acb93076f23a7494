"""The API's Swagger UI and ReDoc pages may load nothing from another host.

Both are served from drf-spectacular-sidecar's static files, but ReDoc's bundle still
hard-codes an image from cdn.redoc.ly ("API docs by Redocly" in its side menu) that no
option turns off. A Content-Security-Policy that allows only this site makes the browser
refuse that request before it leaves the machine (CSP Level 3, img-src / default-src).
Inline script and style stay allowed here: both pages configure themselves inline.
"""

from __future__ import annotations

from functools import wraps

SAME_SITE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)


def same_site_only(view):
    """Wrap a view so its response carries the same-site-only policy."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = SAME_SITE_POLICY
        return response

    return wrapped

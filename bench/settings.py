"""Settings for bench/ledger_append.py: fedgov's own, plus django-auditlog as the baseline.

auditlog is installed here only, never in the product, so its LogEntry table exists in the
benchmark's throw-away database and nowhere else.
"""

from fedgov.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "auditlog"]  # noqa: F405

"""fedgov settings: one module, everything deployment-specific comes from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from fedgov.env import env_bool, env_int, env_list, env_str, local_secret
from fedgov.logging import logging_config

# Lets the typed code write admin.ModelAdmin[LedgerEntry] and QuerySet[LegalHold] as base
# classes at run time too (django-stubs' documented set-up; DRF's classes take it natively).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FEDGOV_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or local_secret(VAR_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

# Production behind a TLS-terminating proxy: FEDGOV_HTTPS=1 turns on HTTPS-only cookies,
# the redirect to https, HSTS and trust in the proxy's X-Forwarded-Proto (docs/deployment.md).
# Off by default so `make serve` works on plain http://localhost.
FEDGOV_HTTPS = env_bool("FEDGOV_HTTPS", False)
if FEDGOV_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("FEDGOV_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("FEDGOV_HSTS_INCLUDE_SUBDOMAINS", True)
    # On by default so `check --deploy` is clean; it only matters once the domain is
    # submitted to the browsers' preload list, which is the deployer's own step.
    SECURE_HSTS_PRELOAD = env_bool("FEDGOV_HSTS_PRELOAD", True)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Idle timeout: a session unused this long ends. Every request renews it, so it measures
# idleness, not session length. One value for everyone: approvers need it short, and a
# shorter timeout for the other roles costs them a login at most.
SESSION_COOKIE_AGE = env_int("FEDGOV_SESSION_IDLE_SECONDS", 30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "axes",
    "csp",
    # The second factor: TOTP devices (fedgov/second_factor.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "fedgov",
    "audit",
    "sites",
    "opennebula",
    "training",
    "reports",
    "dashboard",
]

MIDDLEWARE = [
    # django-prometheus: Before must stay first and After last to time whole requests.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # whitenoise serves collected static files itself, so the admin keeps its CSS with
    # DEBUG off under gunicorn (https://whitenoise.readthedocs.io/en/stable/django.html:
    # directly after SecurityMiddleware, above everything else).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Language: cookie, then Accept-Language (Django's order); after the session, before
    # CommonMiddleware, as Django's i18n docs require.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A signed-in user's own language choice overrides the browser's.
    "fedgov.i18n.UserLanguageMiddleware",
    # django-otp: marks request.user verified when the session holds a confirmed device.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # django-axes: counts failed logins and refuses a locked-out username (its docs: last).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# Content-Security-Policy on every page (django-csp): scripts, images, fonts and requests
# from this site only, so no page can pull anything from elsewhere. Inline style stays
# allowed (the admin uses style attributes); inline script does not. The API doc pages
# set their own, equally same-site policy (fedgov/doc_pages.py), which the middleware
# leaves in place.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}

# django-axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# The name authenticator apps show beside the code (otpauth:// issuer).
OTP_TOTP_ISSUER = env_str("FEDGOV_OTP_ISSUER", "fedgov")
# A TOTP secret is the second factor itself: an admin who could read another person's
# key or QR code in the device admin could approve rounds in their name and defeat the
# four-eyes rule. Each person sees their secret once, at their own enrolment
# (fedgov/second_factor_views.py); the admin shows neither key nor QR code to anyone.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

AXES_FAILURE_LIMIT = env_int("FEDGOV_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("FEDGOV_LOGIN_LOCKOUT_MINUTES", 15))
# Either limit locks: per username (another address gets no fresh attempts) and per
# client address (one address trying many usernames). Behind a reverse proxy the
# address comes from X-Forwarded-For (fedgov/client_ip.py), or every visitor would share
# the proxy's address and one attacker would lock everyone out.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
FEDGOV_TRUSTED_PROXIES = env_int("FEDGOV_TRUSTED_PROXIES", 0)
AXES_CLIENT_IP_CALLABLE = "fedgov.client_ip.client_ip"
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "fedgov.urls"
WSGI_APPLICATION = "fedgov.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# The embedded default is a SQLite file under var/; production sets DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'fedgov.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (Celery, the API) wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            # Write-ahead log, synced at every commit: as durable as the rollback journal
            # (https://www.sqlite.org/pragma.html#pragma_synchronous: "FULL ... in WAL mode
            # ... the WAL file is synchronized after each transaction commit") with one
            # fsync per commit instead of the journal's several, and readers no longer
            # block the one writer (https://www.sqlite.org/wal.html).
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# The federation's languages (issue 19). A user's own choice (their profile) wins, then
# the language cookie the switcher sets, then Accept-Language, then English.
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("es", "Español"),
    ("pl", "Polski"),
    ("fr", "Français"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Our own date formats win over Django's per language: always a 24-hour clock with the
# time zone shown (Django's English default prints "10:58 p.m." with no zone).
FORMAT_MODULE_PATH = ["fedgov.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
# Counts in templates and admin cells grouped as the reader's language groups them
# ("12.345" in German, "12 345" in Polish). Ids a machine reads back (hrefs, hidden inputs,
# data- attributes) go through ``unlocalize``; fedgov.numbers does the same for Python text.
USE_THOUSAND_SEPARATOR = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("FEDGOV_STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request without it
# Compressed, without a manifest: a missing manifest would make every template that
# names a static file fail until collectstatic has run (tests, manage.py commands).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # DRF's TokenAuthentication, then the token owner's language (fedgov/i18n.py).
        "fedgov.i18n.LanguageTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "fedgov.errors.api_exception_handler",
    # JSON with a size and depth limit (fedgov/parsers.py); forms keep Django's own limits.
    "DEFAULT_PARSER_CLASSES": [
        "fedgov.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# The largest API body fedgov reads, checked before parsing. 16 MiB holds the biggest
# consent upload (50,000 events) with room to spare.
FEDGOV_API_MAX_BODY_BYTES = env_int("FEDGOV_API_MAX_BODY_BYTES", 16 * 1024 * 1024)
# The schema is built per request in the reader's language (issue 19): every description
# in it is a lazy translation, read when the schema is rendered. Docstrings are for
# developers and stay English, so they are not turned into descriptions; what a reader
# needs is given as a translated summary, description or help text.
SPECTACULAR_SETTINGS = {
    "TITLE": "fedgov API",
    "DESCRIPTION": _("Governance, GDPR gating and tamper-evident audit for federated learning."),
    "VERSION": "1.0.0",
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from this server's static files (drf-spectacular-sidecar), never
    # a CDN: offline they still work, and a GDPR tool makes no call to a third party.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # fedgov.converters.BoundedIdConverter: ids of at most 18 digits.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}
    },
}

# Celery: without a broker the embedded default runs no worker at all; services call
# each other directly and nothing is enqueued.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: the broker `manage.py serve` uses on the embedded
    # default, so a worker and beat run with no server. Producer and consumer share one
    # queue folder (kombu/transport/filesystem.py: data_folder_in/out, control_folder
    # for fanout, processed_folder when store_processed).
    _BROKER_DIR = Path(env_str("FEDGOV_BROKER_DIR", str(VAR_DIR / "broker")))
    for _sub in ("queue", "control", "processed"):
        (_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "ledger-checkpoint": {
        "task": "audit.checkpoint_if_new",
        "schedule": timedelta(seconds=env_int("FEDGOV_CHECKPOINT_INTERVAL", 60)),
    },
}

# fedgov's own settings.
FEDGOV_LEDGER_ORIGIN = env_str("FEDGOV_LEDGER_ORIGIN", "fedgov.local/ledger")
FEDGOV_SIGNING_KEY_FILE = env_str("FEDGOV_SIGNING_KEY_FILE")
FEDGOV_KEY_DIR = Path(env_str("FEDGOV_KEY_DIR", str(VAR_DIR / "keys")))
FEDGOV_APPROVAL_TTL = timedelta(seconds=env_int("FEDGOV_APPROVAL_TTL_SECONDS", 24 * 3600))
# How long ledger entries keep their contents (docs/ai-act-logging.md). The AI Act asks
# for at least six months (Art. 19(1), 26(6)); a shorter setting is refused at start-up.
FEDGOV_LEDGER_RETENTION_DAYS = env_int("FEDGOV_LEDGER_RETENTION_DAYS", 3650)
FEDGOV_LEDGER_RETENTION_MIN_DAYS = 183
if FEDGOV_LEDGER_RETENTION_DAYS < FEDGOV_LEDGER_RETENTION_MIN_DAYS:
    raise ImproperlyConfigured(
        f"FEDGOV_LEDGER_RETENTION_DAYS={FEDGOV_LEDGER_RETENTION_DAYS} is below the AI Act's "
        f"six-month minimum for automatic logs ({FEDGOV_LEDGER_RETENTION_MIN_DAYS} days)"
    )
# Witnesses asked after each checkpoint (audit.witnessing): "name=url" pairs separated by
# commas, each name pinned with `manage.py ledger_key trust --role witness`. A checkpoint
# counts as witnessed with FEDGOV_WITNESS_QUORUM valid cosignatures; ledger_verify fails
# entries older than FEDGOV_WITNESS_MAX_LAG seconds that no witnessed checkpoint covers.
FEDGOV_WITNESSES = [
    tuple(item.strip().split("=", 1))
    for item in env_str("FEDGOV_WITNESSES").split(",")
    if item.strip()
]
FEDGOV_WITNESS_QUORUM = env_int("FEDGOV_WITNESS_QUORUM", 0)
FEDGOV_WITNESS_MAX_LAG = timedelta(seconds=env_int("FEDGOV_WITNESS_MAX_LAG", 3600))
FEDGOV_WITNESS_TIMEOUT = env_int("FEDGOV_WITNESS_TIMEOUT_MS", 2000) / 1000
for _witness in FEDGOV_WITNESSES:
    if len(_witness) != 2 or not all(_witness):
        raise ImproperlyConfigured(f"FEDGOV_WITNESSES: {'='.join(_witness)!r} is not name=url")
if len(FEDGOV_WITNESSES) < FEDGOV_WITNESS_QUORUM:
    raise ImproperlyConfigured(
        f"FEDGOV_WITNESS_QUORUM={FEDGOV_WITNESS_QUORUM} exceeds the "
        f"{len(FEDGOV_WITNESSES)} witnesses in FEDGOV_WITNESSES"
    )
# Trusted time (RFC 3161): the timestamp authority asked to date each checkpoint note and
# each report signature (audit.timestamping, reports.signing). FEDGOV_TSA_CERT_FILES (PEM
# files, comma-separated: the TSA's CA or its certificate) are pinned: ledger_verify checks
# every stored token against them and the report's validation data embeds them. Unset
# URL: nothing is timestamped and reports and ledger_verify say "no trusted time".
FEDGOV_TSA_URL = env_str("FEDGOV_TSA_URL")
FEDGOV_TSA_CERT_FILES = [
    Path(item.strip()) for item in env_str("FEDGOV_TSA_CERT_FILES").split(",") if item.strip()
]
FEDGOV_TSA_TIMEOUT = env_int("FEDGOV_TSA_TIMEOUT_MS", 5000) / 1000
if FEDGOV_TSA_URL and not FEDGOV_TSA_CERT_FILES:
    raise ImproperlyConfigured(
        "FEDGOV_TSA_URL is set but FEDGOV_TSA_CERT_FILES is not: pin the TSA's certificate"
    )
CELERY_BEAT_SCHEDULE["ledger-retention"] = {
    "task": "audit.apply_retention",
    "schedule": timedelta(seconds=env_int("FEDGOV_RETENTION_INTERVAL", 24 * 3600)),
}

# LOG_FORMAT=json: one JSON object per line with round/run ids from ``extra``
# (fedgov/logging.py); plain text otherwise. Credentials and pseudonyms are redacted.
LOGGING = logging_config(env_str("LOG_FORMAT", "plain"), env_str("LOG_LEVEL", "WARNING"))

# Prometheus: /metrics (fedgov/metrics.py). With a token set, scrapes must send
# "Authorization: Bearer <token>"; FEDGOV_METRICS_TOKEN_FILE works too.
FEDGOV_METRICS_TOKEN = env_str("FEDGOV_METRICS_TOKEN")

# Adapters behind training's ports, by dotted path (see training/ports.py).
FEDGOV_PROVISIONER = env_str("FEDGOV_PROVISIONER", "opennebula.provisioner.OpenNebulaProvisioner")
# The adapter behind training's workload port (training.ports.Workloads).
FEDGOV_WORKLOADS = env_str("FEDGOV_WORKLOADS", "opennebula.workloads.OpenNebulaWorkloads")

# OpenNebula (opennebula): per-call timeout, how long a VM may take to reach RUNNING,
# the poll backoff, and the Flower appliance's SuperLink address put into each VM's context.
FEDGOV_ONE_CALL_TIMEOUT = float(env_str("FEDGOV_ONE_CALL_TIMEOUT", "10"))
FEDGOV_ONE_RUNNING_DEADLINE = float(env_str("FEDGOV_ONE_RUNNING_DEADLINE", "300"))
FEDGOV_ONE_POLL_INITIAL = float(env_str("FEDGOV_ONE_POLL_INITIAL", "0.5"))
FEDGOV_ONE_POLL_MAX = float(env_str("FEDGOV_ONE_POLL_MAX", "5"))
# How long cleanup of a failed VM waits for oned to report it DONE (issue 15).
FEDGOV_ONE_CLEANUP_DEADLINE = float(env_str("FEDGOV_ONE_CLEANUP_DEADLINE", "60"))
# Dead zones (opennebula/breaker.py): calls in a row without an answer before a zone's
# breaker opens, how long it stays open, and how many unanswered polls one provisioning
# or cleanup tolerates before giving up (so a worker is held for at most about
# FEDGOV_ONE_RETRY_BUDGET x FEDGOV_ONE_CALL_TIMEOUT by a zone that died mid-way).
FEDGOV_ONE_BREAKER_THRESHOLD = env_int("FEDGOV_ONE_BREAKER_THRESHOLD", 3)
FEDGOV_ONE_BREAKER_COOLDOWN = float(env_str("FEDGOV_ONE_BREAKER_COOLDOWN", "60"))
FEDGOV_ONE_RETRY_BUDGET = env_int("FEDGOV_ONE_RETRY_BUDGET", 3)
FEDGOV_ONE_HTTPS_VERIFY = env_bool("FEDGOV_ONE_HTTPS_VERIFY", True)
FEDGOV_ONE_SUPERLINK_ADDRESS = env_str("FEDGOV_ONE_SUPERLINK_ADDRESS", "127.0.0.1:9092")
# The VM template used for sites without a SuperNode template id in their zone.
FEDGOV_ONE_VM_TEMPLATE = {"CPU": "1", "VCPU": "2", "MEMORY": "2048"}
CELERY_BEAT_SCHEDULE["opennebula-reconcile"] = {
    "task": "opennebula.reconcile",
    "schedule": timedelta(seconds=env_int("FEDGOV_ONE_RECONCILE_INTERVAL", 60)),
}

# Reports (reports): where signed PDFs and evidence bundles are stored, the
# organisation named on them, and its X.509 signing certificate and key (PEM). Without
# them fedgov makes its own organisation CA and signing certificate in the report folder.
FEDGOV_REPORT_DIR = Path(env_str("FEDGOV_REPORT_DIR", str(VAR_DIR / "reports")))
FEDGOV_REPORT_ORGANISATION = env_str("FEDGOV_REPORT_ORGANISATION", "fedgov operator")
FEDGOV_REPORT_CERT_FILE = env_str("FEDGOV_REPORT_CERT_FILE")
FEDGOV_REPORT_KEY_FILE = env_str("FEDGOV_REPORT_KEY_FILE")

# Largest consent CSV the admin upload accepts, checked before parsing (sites/admin_steward.py).
FEDGOV_CONSENT_CSV_MAX_BYTES = env_int("FEDGOV_CONSENT_CSV_MAX_BYTES", 8 * 1024 * 1024)

# Lifetime of a signed round ticket; a site refuses an expired one.
FEDGOV_TICKET_TTL_SECONDS = env_int("FEDGOV_TICKET_TTL_SECONDS", 900)

# Rounds the orchestrator should have moved but that sat still this long (a worker died
# mid-step) are advanced by the beat sweep; ``manage.py federate`` on a broker queues the
# step again after this long (its message may have been lost).
FEDGOV_ROUND_STALL_SECONDS = env_int("FEDGOV_ROUND_STALL_SECONDS", 120)
# A running round with no aggregate fails once nothing happened to it for this long: no
# move, no update recorded. A few minutes, never the ticket's lifetime.
FEDGOV_ROUND_PROGRESS_SECONDS = env_int("FEDGOV_ROUND_PROGRESS_SECONDS", 300)
# The country of the host that runs the local SuperNodes of ``manage.py flower up``: a
# fact the operator states, checked at placement like a VM's host label. Unset, no local
# placement passes (deny by default: a host's location is never assumed).
FEDGOV_LOCAL_HOST_COUNTRY = env_str("FEDGOV_LOCAL_HOST_COUNTRY")
CELERY_BEAT_SCHEDULE["training-sweep-stalled-rounds"] = {
    "task": "training.sweep_stalled_rounds",
    "schedule": timedelta(seconds=env_int("FEDGOV_ROUND_SWEEP_INTERVAL", 60)),
}
# Flower processes left by a process that died outright are ended by this beat task too
# (on the host its worker runs on), besides the watchdog and federate's own start-up.
CELERY_BEAT_SCHEDULE["training-reap-orphaned-processes"] = {
    "task": "training.reap_orphaned_processes",
    "schedule": timedelta(seconds=env_int("FEDGOV_ROUND_SWEEP_INTERVAL", 60)),
}
# Rounds of an in-process ``manage.py federate`` that was killed end with a reason
# (training/services/recovery.py); a restarted federate does the same at start-up.
CELERY_BEAT_SCHEDULE["training-recover-abandoned-runs"] = {
    "task": "training.recover_abandoned_runs",
    "schedule": timedelta(seconds=env_int("FEDGOV_ROUND_SWEEP_INTERVAL", 60)),
}

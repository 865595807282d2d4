"""Settings for every run mode, switched by environment variables only (see .env.example).

With nothing set, the demo runs: SQLite file, in-memory channel layer, Twilio sandbox. `DATABASE_URL`
moves to PostgreSQL, `REDIS_URL` to channels-redis, Twilio credentials to real telephony.
"""

import datetime as dt
import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from dialer.channel_layers import redis_channel_layer

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# -- core ------------------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
# Sandbox mode (the local Twilio emulator with its published credentials, and the emulated softphone) is on only
# when asked for: TWILIO_SANDBOX=true, or `manage.py demo` (manage.py sets it for that command alone). Guessing it
# from the API base URL switched it on silently for any Twilio-compatible proxy.
TWILIO_SANDBOX = env.bool("TWILIO_SANDBOX", default=False)
# Production mode: DEBUG off and real Twilio. Unsafe defaults there are `check --deploy` errors and the web
# server and the dialer refuse to start (dialer/checks.py).
PRODUCTION = not DEBUG and not TWILIO_SANDBOX

# Published values, good for the demo and the tests only: dialer/checks.py refuses them in production.
DEMO_SECRET_KEY = "django-insecure-demo-key-change-me-in-production-0123456789"  # noqa: S105
SANDBOX_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=DEMO_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The URL Twilio reaches us at. Webhook URLs and signature checks are built from it, never from Host.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    "dialer.apps.DialerConfig",
    "campaigns",
    "voice",
    "voice.reports",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Per-user limit on the JSON API (not the Twilio webhooks): 429 with Retry-After.
    "dialer.throttle.ApiThrottleMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]
# Twilio's webhooks (/api/voice/) are not pages: no session, user, CSRF token, message, frame or content policy,
# and no login to lock out. The web processes (the Procfile's and the demo's) run them through a handler with
# only this (dialer/asgi.py): the rest of MIDDLEWARE was a tenth of a callback's CPU. The suite's webhook fixture
# posts through it too (tests/conftest.py).
WEBHOOK_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # ALLOWED_HOSTS holds for every request (CommonMiddleware asks for the host).
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "dialer.urls"
WSGI_APPLICATION = "dialer.wsgi.application"
ASGI_APPLICATION = "dialer.asgi.application"

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
            ],
        },
    },
]

# -- database --------------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg 3's pool instead of persistent connections: under ASGI every request runs in a
    # different thread, so CONN_MAX_AGE > 0 leaks connections until PostgreSQL refuses clients.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=14),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
else:
    # SQLite serialises writers. The demo runs the web server, the dialer and the sandbox as threads of
    # one process: WAL lets readers go on while one writes, and IMMEDIATE transactions take the write
    # lock up front instead of failing with "database is locked" when two upgrade at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# PostgreSQL prepares the webhook hot path's statements (voice/compiled.py) on each connection: it parses and plans
# the call's locked read once, not on every webhook (that was three quarters of what the read cost it). The ORM's
# other queries are never prepared. Off behind a pooler that cannot keep prepared statements (PgBouncer before
# 1.22, or without max_prepared_statements, in transaction mode).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
# The threads one web process runs HTTP requests on (dialer/asgi.py): Twilio's webhooks on theirs, the pages, the
# JSON API and the downloads on theirs; the rest wait in the event loop. Together with OUTBOX_THREADS keep them
# under DATABASE_POOL_MAX: the sockets' reads and the hold timers need connections too.
# Two webhook threads: a webhook thread no longer waits on the event loop, only on the database (and, for a few
# rare webhooks, on Twilio's REST API: a recording's start, a supervision's end), so two keep a core busy, and more
# only take the GIL from the event loop, which sends the consoles' events and the answers: with 4, commit ->
# console p99 at 150 callbacks/s was 190-650 ms, with 2, 85-120 ms (docs/performance.md).
WEB_REQUEST_CONCURRENCY = env.int("WEB_REQUEST_CONCURRENCY", default=2)
WEB_PAGE_CONCURRENCY = env.int("WEB_PAGE_CONCURRENCY", default=3)
# Log (warning, "dialer.gc") every garbage collection that holds a web process at least this long; 0: off.
GC_PAUSE_LOG_MS = env.float("GC_PAUSE_LOG_MS", default=0.0)

# -- channels --------------------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 500}}}

# -- cache (API throttle counters) ----------------------------------------------------------------------

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# -- auth ------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out account or address is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"

# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one account, or from one address,
# that account (or address) is refused for AXES_COOLOFF_MINUTES, even with the right password.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Lift a lockout with `manage.py axes_reset_username <name>` / `axes_reset_ip <address>` (not in the admin).
AXES_ENABLE_ADMIN = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind a proxy, the client address comes from the header the proxy sets (AXES_IPWARE_META_PRECEDENCE_ORDER).
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (["HTTP_X_FORWARDED_FOR"] if AXES_IPWARE_PROXY_COUNT else []) + ["REMOTE_ADDR"]

# JSON API throttling (dialer/throttle.py): requests per user (per address when anonymous) per window.
API_THROTTLE_RATE = env.int("API_THROTTLE_RATE", default=120)
API_THROTTLE_WINDOW_S = env.int("API_THROTTLE_WINDOW_S", default=60)

LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# -- i18n, static ----------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# The Twilio Voice SDK comes from npm (`npm ci --omit=dev`, never a CDN) and is served as
# static/twilio-voice-sdk/twilio.min.js. Without node_modules the sandbox softphone still works.
_VOICE_SDK_DIST = BASE_DIR / "node_modules" / "@twilio" / "voice-sdk" / "dist"
if _VOICE_SDK_DIST.is_dir():
    STATICFILES_DIRS.append(("twilio-voice-sdk", _VOICE_SDK_DIST))
# Chart.js (npm, UMD build) draws the reports' charts as static/chartjs/chart.umd.min.js; without it the reports
# still show every figure in the tables under the charts.
_CHARTJS_DIST = BASE_DIR / "node_modules" / "chart.js" / "dist"
if _CHARTJS_DIST.is_dir():
    STATICFILES_DIRS.append(("chartjs", _CHARTJS_DIST))
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the source folders unless collectstatic ran: the demo needs no build step.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
# Without collectstatic there is no STATIC_ROOT yet; the finders serve the files, so the warning is noise.
warnings.filterwarnings("ignore", message="No directory at")

# -- security --------------------------------------------------------------------------------------

# Trust X-Forwarded-Proto only when a proxy in front sets it (SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https):
# without one, any client could claim HTTPS.
_proxy_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = (_proxy_header[0], _proxy_header[1]) if len(_proxy_header) == 2 else None
# Production mode turns cookies-over-HTTPS and HSTS on unless told otherwise; the demo and tests run on http.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# Content-Security-Policy (django-csp): scripts and styles from this origin only (no inline code anywhere: the
# pages, the admin additions and the softphone are static files). Sockets go to this origin ('self' covers ws/wss
# in current browsers). The softphone talks to Twilio with real credentials, to the sandbox (on loopback, any
# port) in sandbox mode.
if TWILIO_SANDBOX:
    _CSP_PHONE = ["http://127.0.0.1:*", "http://localhost:*"]
else:
    _CSP_PHONE = ["https://*.twilio.com", "wss://*.twilio.com", "https://*.twiliocdn.com"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "media-src": ["'self'", "blob:", *_CSP_PHONE],
        "connect-src": ["'self'", *_CSP_PHONE],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# -- Twilio ----------------------------------------------------------------------------------------

# The sandbox accepts these defaults, so the demo needs no account; real telephony sets all of them.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="AC" + "0" * 32)
# No default outside sandbox mode: a missing token must not fall back to the published sandbox one.
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default=SANDBOX_AUTH_TOKEN if TWILIO_SANDBOX else "")
TWILIO_API_KEY = env.str("TWILIO_API_KEY", default="")
TWILIO_API_SECRET = env.str("TWILIO_API_SECRET", default="")
TWILIO_TWIML_APP_SID = env.str("TWILIO_TWIML_APP_SID", default="AP" + "0" * 32)
TWILIO_PHONE_NUMBER = env.str("TWILIO_PHONE_NUMBER", default="+12025550199")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com").rstrip("/")
TWILIO_CPS = env.float("TWILIO_CPS", default=1.0)
TWILIO_HTTP_TIMEOUT_S = env.float("TWILIO_HTTP_TIMEOUT_S", default=5.0)
# The sandbox's per-run control token (`twilio_sandbox` prints it; the demo sets it): the console's sandbox
# softphone sends it to place the agent's leg.
TWILIO_SANDBOX_CONTROL_TOKEN = env.str("TWILIO_SANDBOX_CONTROL_TOKEN", default="")

# -- dialer ----------------------------------------------------------------------------------------

# Seconds of silence past a call's ring timeout before the reconciler asks Twilio what happened.
RECONCILE_MARGIN_S = env.int("RECONCILE_MARGIN_S", default=60)
# How often every dialer worker runs the reconciler (it also runs once when a worker or the demo starts).
RECONCILE_EVERY_S = env.float("RECONCILE_EVERY_S", default=15.0)
# Seconds a call may sit in bridging or voicemail with no news before the reconciler re-sends its redirect.
RECONCILE_STUCK_S = env.float("RECONCILE_STUCK_S", default=8.0)
# The outbox (voice.outbox): Twilio side effects run after commit on this many threads per process, off the
# request thread. "inline" runs them on the committing thread instead (the tests, for determinism).
OUTBOX_THREADS = env.int("OUTBOX_THREADS", default=4)
OUTBOX_INLINE = env.bool("OUTBOX_INLINE", default=False)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=5)
# Presence (voice.presence): a console that has not pinged for this long is gone and its agent is paused.
PRESENCE_TIMEOUT_S = env.float("PRESENCE_TIMEOUT_S", default=12.0)
# Whether an agent needs a connected console to receive customers (off only for API-driven agents and tests).
PRESENCE_REQUIRE_CONSOLE = env.bool("PRESENCE_REQUIRE_CONSOLE", default=True)
# Raw webhooks (with signatures and phone numbers) are deleted after this many days: `manage.py purge_webhooks`.
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)
# CSV contact uploads: larger files, more rows or more columns are refused before anything is imported.
CSV_MAX_BYTES = env.int("CSV_MAX_BYTES", default=20 * 1024 * 1024)
CSV_MAX_ROWS = env.int("CSV_MAX_ROWS", default=100_000)
CSV_MAX_COLUMNS = env.int("CSV_MAX_COLUMNS", default=50)
# Region used to read numbers written without a country code (CSV import, API).
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="US")
# Call recordings older than this are deleted, here and at Twilio, by `purge_recordings`.
RECORDING_RETENTION_DAYS = env.int("RECORDING_RETENTION_DAYS", default=90)
# What an agent's console says when a manager supervises their talk: "all" (listen, whisper and barge),
# "audible" (only whisper and barge, when the agent can hear the manager) or "off".
SUPERVISION_NOTICE = env.str("SUPERVISION_NOTICE", default="all")
if SUPERVISION_NOTICE not in ("all", "audible", "off"):
    raise ImproperlyConfigured("SUPERVISION_NOTICE must be all, audible or off")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # One warning per 4xx would let a forged-webhook flood or a throttled client flood the logs; forged
        # webhooks are logged (rate-limited) by voice.webhooks, 5xx stay at ERROR.
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # twilio-python logs every request and header at INFO.
        "twilio.http_client": {"level": "WARNING"},
    },
}

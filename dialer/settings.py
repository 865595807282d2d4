"""Settings for every run mode, switched by environment variables only (see .env.example).

With nothing set, the demo runs: SQLite file, in-memory channel layer, Twilio sandbox. `DATABASE_URL`
moves to PostgreSQL, `REDIS_URL` to channels-redis, Twilio credentials to real telephony.
"""

import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# -- core ------------------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
# The default key is only good for the local demo; production sets SECRET_KEY (check --deploy says so).
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-demo-key-change-me-in-production-0123456789")
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
        "max_size": env.int("DATABASE_POOL_MAX", default=10),
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
# HTTP requests one web process runs inside Django at once (dialer/limits.py); the rest wait in the event loop.
# Keep it under DATABASE_POOL_MAX: the sockets' reads and the hold timers need connections too.
WEB_REQUEST_CONCURRENCY = env.int("WEB_REQUEST_CONCURRENCY", default=4)

# -- channels --------------------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        # A wallboard receives every event of its campaign: the default 100 queued per socket is short.
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [REDIS_URL], "capacity": 500}},
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 500}}}

# -- auth ------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
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

# -- security (production turns these on through the environment) ----------------------------------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# -- Twilio ----------------------------------------------------------------------------------------

# The sandbox accepts these defaults, so the demo needs no account; real telephony sets all of them.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="AC" + "0" * 32)
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="sandbox-auth-token")
TWILIO_API_KEY = env.str("TWILIO_API_KEY", default="")
TWILIO_API_SECRET = env.str("TWILIO_API_SECRET", default="")
TWILIO_TWIML_APP_SID = env.str("TWILIO_TWIML_APP_SID", default="AP" + "0" * 32)
TWILIO_PHONE_NUMBER = env.str("TWILIO_PHONE_NUMBER", default="+12025550199")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com").rstrip("/")
TWILIO_CPS = env.float("TWILIO_CPS", default=1.0)
TWILIO_HTTP_TIMEOUT_S = env.float("TWILIO_HTTP_TIMEOUT_S", default=5.0)
# Sandbox mode: the softphone adapter drives the sandbox's emulated agent leg instead of the Voice SDK.
TWILIO_SANDBOX = env.bool("TWILIO_SANDBOX", default=not TWILIO_API_BASE_URL.startswith("https://api.twilio.com"))

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
        "daphne": {"level": "WARNING"},
        # twilio-python logs every request and header at INFO.
        "twilio.http_client": {"level": "WARNING"},
    },
}

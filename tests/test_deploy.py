"""Production settings pass Django's deployment checklist, and production refuses unsafe defaults."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "k3v!q8w#zt2p9x@r4m6n1b7c5d0f-production-like-secret-key-for-the-check",
    "DEBUG": "false",
    "TWILIO_SANDBOX": "false",
    "TWILIO_AUTH_TOKEN": "5f2c1a9e8d7b6c5a4f3e2d1c0b9a8f7e",
    "ALLOWED_HOSTS": "dialer.example.com",
    "PUBLIC_BASE_URL": "https://dialer.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_PRELOAD": "true",
}
# What a forgotten setting looks like: the README's production variables without the two secrets.
UNSAFE = ("SECRET_KEY", "TWILIO_AUTH_TOKEN")


def _env(**changes) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    env.update(PRODUCTION_ENV, DJANGO_SETTINGS_MODULE="dialer.settings")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_with_production_environment():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_errors_on_default_secrets():
    result = _run(["manage.py", "check", "--deploy"], _env(**dict.fromkeys(UNSAFE)))
    assert result.returncode != 0
    assert "dialer.E001" in result.stderr and "dialer.E002" in result.stderr
    # The published sandbox token is as bad as none.
    result = _run(["manage.py", "check", "--deploy"], _env(TWILIO_AUTH_TOKEN="sandbox-auth-token"))
    assert "dialer.E002" in result.stderr and "dialer.E001" not in result.stderr


def test_web_server_and_dialer_refuse_to_start_on_default_secrets():
    code = "import dialer.asgi"
    for module in ("dialer.asgi", "dialer.wsgi"):
        result = _run(["-c", f"import {module}"], _env(**dict.fromkeys(UNSAFE)))
        assert result.returncode != 0
        assert "ImproperlyConfigured: refusing to start in production mode" in result.stderr
    result = _run(["manage.py", "run_dialer"], _env(SECRET_KEY=None))
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
    # With a real configuration the same entry point loads.
    assert _run(["-c", code], _env()).returncode == 0


def test_production_mode_defaults_to_secure_cookies_hsts_and_no_proxy_trust():
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER,"
            " s.TWILIO_SANDBOX)")
    bare = _env(SESSION_COOKIE_SECURE=None, CSRF_COOKIE_SECURE=None, SECURE_HSTS_SECONDS=None,
                TWILIO_SANDBOX=None, TWILIO_API_BASE_URL="http://twilio-proxy.internal:8080")
    assert _run(["-c", code], bare).stdout.split() == ["True", "True", "31536000", "None", "False"]
    proxied = _env(SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    assert "('HTTP_X_FORWARDED_PROTO', 'https')" in _run(["-c", code], proxied).stdout
    sandbox = _env(TWILIO_SANDBOX="true", SESSION_COOKIE_SECURE=None, CSRF_COOKIE_SECURE=None,
                   SECURE_HSTS_SECONDS=None)
    assert _run(["-c", code], sandbox).stdout.split()[:3] == ["False", "False", "0"]


def test_redis_url_switches_the_channel_layer():
    code = "import django; django.setup(); from django.conf import settings; " \
           "print(settings.CHANNEL_LAYERS['default']['BACKEND']); print(settings.DATABASES['default']['OPTIONS'])"
    result = _run(["-c", code], _env())
    assert "channels_redis.core.RedisChannelLayer" in result.stdout
    assert "'pool'" in result.stdout

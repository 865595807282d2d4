"""Production settings pass Django's deployment checklist."""

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
    "ALLOWED_HOSTS": "dialer.example.com",
    "PUBLIC_BASE_URL": "https://dialer.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def test_check_deploy_passes_with_production_environment():
    env = {**os.environ, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "dialer.settings"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_redis_url_switches_the_channel_layer():
    env = {**os.environ, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "dialer.settings"}
    code = "import django; django.setup(); from django.conf import settings; " \
           "print(settings.CHANNEL_LAYERS['default']['BACKEND']); print(settings.DATABASES['default']['OPTIONS'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert "channels_redis.core.RedisChannelLayer" in result.stdout
    assert "'pool'" in result.stdout

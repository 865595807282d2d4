"""Gunicorn settings for the Procfile's `web:` process: several ASGI (uvicorn) workers behind one port.

Why several processes: one Python process computes on one core at a time (the GIL). Each worker is a whole copy
of the app (HTTP and WebSockets); with more than one, events cross processes through Redis, so production sets
REDIS_URL. Inside a worker, HTTP runs on `WEB_REQUEST_CONCURRENCY` threads (dialer/asgi.py).

Every knob comes from the environment (the names are the ones platforms already set):
- the address comes from the Procfile (`--bind 0.0.0.0:$PORT`);
- `WEB_CONCURRENCY`: worker processes, default one per core (benchmarks/webhook_load.py measures it);
- `WEB_TIMEOUT_S`: a worker silent that long is restarted (default 30).
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
# The maintained uvicorn worker (uvicorn.workers is deprecated); uvloop and httptools when installed.
worker_class = "uvicorn_worker.UvicornWorker"
timeout = int(os.environ.get("WEB_TIMEOUT_S", "30"))
graceful_timeout = 20
# Twilio and the load balancer keep connections open between callbacks.
keepalive = 75
# Behind the HTTPS proxy: trust its X-Forwarded-* (Django reads X-Forwarded-Proto; see SECURE_PROXY_SSL_HEADER).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

"""`tawasul web serve`: the web app under gunicorn."""
from __future__ import annotations

import os
import shutil
import sys

import click

from tawasul.settings import as_environ, generated_secret
from web.i18n import compile_catalogs


@click.group("web")
def web():
    """The web app."""


@web.command("serve")
@click.option("--workers", default=2, show_default=True)
@click.option("--threads", default=32, show_default=True,
              help="Threads per worker; half of them at most serve the governor's console streams "
                   "(the default: 16 console streams per worker).")
@click.pass_obj
def serve(settings, workers, threads):
    """Serve the web app with gunicorn (in the foreground)."""
    settings.require_production_secret()
    os.environ.update(as_environ(settings))
    compile_catalogs(cache=settings.path("translations"))  # once, here, before gunicorn starts its workers
    # Threaded workers: a console's server-sent event stream holds a thread, not a whole worker;
    # web/console.py caps the streams per worker (TAWASUL_CONSOLE_MAX_STREAMS) so requests still get threads.
    os.environ.setdefault("TAWASUL_CONSOLE_MAX_STREAMS", str(max(1, threads // 2)))
    os.environ.setdefault("TAWASUL_WEB_THREADS", str(threads))  # each worker's database pool (web/__init__.py)
    # Prometheus multiprocess mode (web/metrics.py): the workers' figures, in files emptied at each start.
    metrics = settings.path("metrics", "web").resolve()
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.parent.mkdir(mode=0o700, exist_ok=True)
    metrics.mkdir(mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    generated_secret(settings, "metrics-token", 32)  # for a scraper on another host (web/metrics.py)
    os.execv(sys.executable, [
        sys.executable, "-m", "gunicorn", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads),
        "--bind", f"{settings.web_host}:{settings.web_port}",
        # %(U)s: the path without its query string, so a ?token= never reaches the log.
        "--access-logfile", "-", "--access-logformat", '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"',
        "--graceful-timeout", "5", "--config", "python:web.gunicorn_config",
        "--no-control-socket",  # nothing uses gunicorn's control socket (it wants a writable home)
        "web:create_app()",
    ])

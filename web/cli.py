"""`tawasul web serve`: the web app under gunicorn."""
from __future__ import annotations

import os
import sys

import click

from tawasul.settings import as_environ


@click.group("web")
def web():
    """The web app."""


@web.command("serve")
@click.option("--workers", default=2, show_default=True)
@click.pass_obj
def serve(settings, workers):
    """Serve the web app with gunicorn (in the foreground)."""
    settings.require_production_secret()
    os.environ.update(as_environ(settings))
    os.execv(sys.executable, [
        sys.executable, "-m", "gunicorn", "--workers", str(workers),
        "--bind", f"{settings.web_host}:{settings.web_port}",
        # %(U)s: the path without its query string, so a ?token= never reaches the log.
        "--access-logfile", "-", "--access-logformat", '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"',
        "--graceful-timeout", "5", "web:create_app()",
    ])

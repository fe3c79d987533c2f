"""`tawasul agi serve`: the FastAGI server (also `python -m agi`)."""
from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys

import click
import sqlalchemy as sa
import uvloop

from agi import metrics, server
from agi.call import HandlerContext, SQLiteReader
from agi.routes import ROUTES
from tawasul import logs, metrics as metrics_http, settings as settings_module
from tawasul.db import Database
from tawasul.settings import Settings, SettingsError

log = logging.getLogger("agi.cli")


def _raise_open_files_limit(wanted: int) -> None:
    """Each connection is a file descriptor: lift the soft limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_server(settings: Settings, host: str, port: int) -> None:
    logs.configure(settings)
    # A line a call: what the format does not show is not gathered (the caller's file and line take a stack walk).
    logging._srcfile = None  # the logging HOWTO's "Optimization" switch
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    _raise_open_files_limit(server.MAX_CONNECTIONS + 256)
    if settings.agi_metrics_port:
        metrics_http.serve(settings.agi_metrics_port, metrics.REGISTRY, "FastAGI")
    url = sa.engine.make_url(settings.db_url)
    log.info("agi: database %s", url.render_as_string(hide_password=True))
    # SQLite: reads on the event loop, on one kept connection; anything else (over the network, it may
    # hang): a pooled connection a call, in a worker thread.
    # Writes (wrong booking codes, counted on the appointment) always go to a worker thread.
    writer = Database(settings.db_url)
    if url.get_backend_name() == "sqlite":
        database = SQLiteReader(settings.db_url)
        context = HandlerContext(settings=settings, connect=database.connect, write=writer.write, db_inline=True)
    else:
        database = writer.engine
        context = HandlerContext(settings=settings, connect=database.connect, write=writer.write)
    trust = {"secret": settings_module.agi_secret(settings),
             "allowed_peers": settings_module.peer_networks(settings.agi_allowed_peers)}

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await server.serve(ROUTES, context, host, port, stop, **trust)

    try:
        # uvloop: the same asyncio, ~20% less CPU a call (1.68-1.79 -> 1.36-1.42 ms at 200 calls/s).
        uvloop.run(main())
    finally:
        database.dispose()
        writer.dispose()


@click.group("agi")
def agi():
    """FastAGI server: the routing decisions the dialplan asks for."""


@agi.command("serve")
@click.option("--host", help="Address to listen on (default: the agi_host setting).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: the agi_port setting).")
@click.pass_context
def serve(ctx, host, port):
    """Serve FastAGI requests until SIGTERM or SIGINT."""
    settings = ctx.obj if isinstance(ctx.obj, Settings) else None
    if settings is None:
        try:
            settings = settings_module.load()
        except SettingsError as exc:
            click.echo(f"tawasul: {exc}", err=True)
            sys.exit(2)
    try:
        run_server(settings, host or settings.agi_host, settings.agi_port if port is None else port)
    except metrics_http.MetricsUnavailable as exc:
        click.echo(f"tawasul: agi: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # e.g. the port is taken
        click.echo(f"tawasul: agi: cannot listen on {host or settings.agi_host}:"
                   f"{settings.agi_port if port is None else port}: {exc.strerror or exc}", err=True)
        sys.exit(1)

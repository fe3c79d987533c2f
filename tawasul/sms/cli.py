"""`tawasul sms send` (the sender, until stopped; `--once`: what is due, then exit), `tawasul sms status`
and `tawasul sms retry` (failed messages, queued again)."""
from __future__ import annotations

import logging
import signal
import threading

import click

from tawasul.clitools import guarded
from tawasul.db import Database
from tawasul.settings import Settings
from tawasul.sms import gateway, sender


@click.group("sms")
def sms():
    """SMS: send the outbox through the gateway."""


@sms.command("send")
@click.option("--once", is_flag=True, help="Send what is due now (retries included), then exit.")
@click.pass_obj
@guarded
def send(settings: Settings, once: bool):
    """Send the outbox's messages through the gateway, polling every sms_poll_seconds."""
    if not settings.sms_gateway_url:
        click.echo("SMS sender disabled: sms_gateway_url is not set; messages stay queued in the outbox")
        return
    sending = sender.Sender(settings, Database(settings.db_url), gateway.Gateway(settings))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = threading.Event()
    if once:
        tried = sending.send_due()
        click.echo(f"{tried} message(s) tried; outbox: {_summary(sending.db) or 'empty'}")
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"SMS sender: {gateway.describe(settings)}, every {settings.sms_poll_seconds:g} s", err=True)
    sending.run(stop)


@sms.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.pass_obj
@guarded
def retry(settings: Settings, ids: tuple[int, ...]):
    """Queue failed messages again (every one, or those with the ids IDS), keeping their keys."""
    count = sender.retry_failed(Database(settings.db_url), list(ids))
    click.echo(f"{count} failed message(s) queued again")


@sms.command("status")
@click.pass_obj
@guarded
def status(settings: Settings):
    """How many messages are queued, being sent, sent and failed."""
    click.echo(_summary(Database(settings.db_url)) or "the outbox is empty")


def _summary(db: Database) -> str:
    counts = sender.counts(db)
    return ", ".join(f"{counts[s]} {s}" for s in ("queued", "sending", "sent", "failed") if counts.get(s))


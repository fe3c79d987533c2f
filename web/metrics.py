"""`/metrics`: the web's Prometheus metrics, for a scraper on this machine (loopback, no proxy header) or
one holding the bearer token in `<state_dir>/secrets/metrics-token`; anyone else gets 404.

gunicorn runs several workers: `tawasul web serve` points prometheus_client's multiprocess mode at
`<state_dir>/metrics/web` (emptied at each start; web/gunicorn_config.py forgets an exited worker's
files), so any worker's answer sums every worker's open console streams. The outbox figures are read
from the database at scrape time.
"""
from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import os

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from tawasul.models import OutboxMessage
from web import db_of, settings_of

bp = Blueprint("metrics", __name__)

TOKEN_FILE = "metrics-token"
STREAMS = Gauge("tawasul_console_streams_open", "The governor's console event streams open now.",
                multiprocess_mode="livesum", registry=None)


class OutboxCollector:
    """The SMS outbox, counted at scrape time: messages waiting (queued or being sent) and failed for good."""

    WAITING = ("queued", "sending")

    def __init__(self, db):
        self.db = db

    def collect(self):
        with self.db.read_one() as connection:
            counts = dict(connection.execute(
                sa.select(OutboxMessage.status, sa.func.count()).where(OutboxMessage.status != "sent")
                .group_by(OutboxMessage.status)).all())
            oldest = connection.execute(sa.select(sa.func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status.in_(self.WAITING))).scalar()
        yield GaugeMetricFamily("tawasul_outbox_unsent_messages", "SMS messages queued and not sent yet.",
                                value=sum(counts.get(status, 0) for status in self.WAITING))
        yield GaugeMetricFamily("tawasul_outbox_failed_messages",
                                "SMS messages the gateway refused, or that failed every try.",
                                value=counts.get("failed", 0))
        age = 0.0
        if oldest is not None:  # naive UTC from a plain select
            age = (dt.datetime.now(dt.UTC) - oldest.replace(tzinfo=dt.UTC)).total_seconds()
        yield GaugeMetricFamily("tawasul_outbox_oldest_unsent_age_seconds",
                                "Age of the oldest unsent SMS message (0: none).", value=max(age, 0.0))


def token(settings) -> str | None:
    path = settings.secrets_dir / TOKEN_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def allowed() -> bool:
    header = request.headers.get("Authorization", "")
    expected = token(settings_of(current_app))
    if expected and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), expected.encode())
    # A request a proxy forwarded came from elsewhere, whatever its address here.
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
def metrics():
    if not allowed():
        abort(404)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:  # one process (tests, the Flask development server)
        registry.register(STREAMS)
    registry.register(OutboxCollector(db_of(current_app)))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

"""Prometheus metrics of the long-running processes that are not the web (the FastAGI server, the call
watcher): each serves its own registry over HTTP on 127.0.0.1 at a port of its own (settings
agi_metrics_port, callwatch_metrics_port; 0: off). One process each, so no multiprocess mode."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("tawasul.metrics")

HOST = "127.0.0.1"


class MetricsUnavailable(Exception):
    """The metrics port cannot be listened on."""


def serve(port: int, registry: CollectorRegistry, what: str):
    """Serve `registry` at http://127.0.0.1:PORT/metrics from a thread; returns the server (shutdown())."""
    ProcessCollector(registry=registry)
    try:
        server, _thread = start_http_server(port, addr=HOST, registry=registry)
    except OSError as exc:
        raise MetricsUnavailable(f"cannot serve {what} metrics on {HOST}:{port}: {exc.strerror or exc}") from None
    log.info("%s metrics on http://%s:%d/metrics", what, HOST, server.server_port)
    return server


class Readings:
    """A collector of figures read at scrape time: (kind, name, help, read) with kind counter or gauge."""

    def __init__(self, readings: Iterable[tuple[str, str, str, Callable[[], float]]]):
        self.readings = list(readings)

    def collect(self):
        for kind, name, text, read in self.readings:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, text, value=float(read()))

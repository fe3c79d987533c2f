"""The FastAGI server's Prometheus metrics (served by `tawasul agi serve` when agi_metrics_port is set)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

DECISIONS = Counter("tawasul_agi_decisions", "Calls decided, by script, decision and reason "
                    "(decision none: the channel was gone first).", ["script", "decision", "reason"],
                    registry=REGISTRY)
# From the headers read to the decision handed over; a route that asks for a check-in code includes
# the caller's keying.
LATENCY = Histogram("tawasul_agi_decision_seconds", "Time to decide a call, by script.", ["script"],
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60),
                    registry=REGISTRY)
REJECTED = Counter("tawasul_agi_rejected_connections", "Connections closed before a script ran "
                   "(garbage, timeout, unknown script, too many).", registry=REGISTRY)


def decided(script: str, decision: str, reason: str, seconds: float) -> None:
    DECISIONS.labels(script, decision, reason).inc()
    LATENCY.labels(script).observe(seconds)

"""Prometheus metrics and JSON logs of the real processes, scraped over real sockets: the FastAGI server
after real FastAGI exchanges, the web (gunicorn, two workers) after queueing an SMS and opening a console
stream, the call watcher against an AMI that drops its connection."""
from __future__ import annotations

import http.cookiejar
import json
import re
import socket
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tawasul import demo, outbox
from tawasul.db import Database, upgrade
from tawasul.models import OutboxMessage
from tawasul.settings import agi_secret
from tests.live import free_port, stop, tawasul, wait_for, wait_http
from tests.unit.test_agi_server import agi_call

pytestmark = pytest.mark.timeout(120)


def scrape(url: str, headers: dict | None = None) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a /metrics page."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture
def seeded(settings):
    settings.state_dir.mkdir(parents=True)
    upgrade(settings.db_url)
    database = Database(settings.db_url)
    with database.write() as session:
        passwords = demo.seed(session, settings)
    yield settings, database, passwords
    database.dispose()


def environ(settings, **more) -> dict:
    return {"TAWASUL_STATE_DIR": str(settings.state_dir), "TAWASUL_DEMO": "1",
            "TAWASUL_CONFIG": str(settings.state_dir / "none.toml"), **more}


def test_agi_metrics_move_with_real_exchanges_and_every_log_line_is_json(seeded, tmp_path):
    settings, _database, _passwords = seeded
    agi_port, metrics_port = free_port(), free_port()
    log = tmp_path / "agi.log"
    with open(log, "w") as out:
        process = tawasul(["agi", "serve", "--port", str(agi_port)], environ(
            settings, TAWASUL_LOG_FORMAT="json", TAWASUL_AGI_METRICS_PORT=str(metrics_port)), stderr=out)
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    denied = ("tawasul_agi_decisions_total", (("decision", "deny"), ("reason", "unknown_device"),
                                              ("script", "route_call")))
    latency = ("tawasul_agi_decision_seconds_count", (("script", "route_call"),))
    rejected = ("tawasul_agi_rejected_connections_total", ())
    try:
        wait_http(url, process)
        wait_for(lambda: "listening on" in log.read_text(), 10, "the FastAGI server to listen")
        before = scrape(url)
        secret = agi_secret(settings)  # the one the server read from the state folder
        assert agi_call(agi_port, "centre-nowhere-1", secret=secret).decision == "deny"
        assert agi_call(agi_port, "centre-nowhere-2", secret=secret).decision == "deny"
        with socket.create_connection(("127.0.0.1", agi_port)) as garbage:
            garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
            garbage.recv(100)  # closed by the server
        after = wait_for(lambda: (lambda m: m if m.get(rejected, 0) > before.get(rejected, 0) else None)(
            scrape(url)), 10, "the rejected counter")
        assert after[denied] - before.get(denied, 0) == 2
        assert after[latency] - before.get(latency, 0) >= 2
        assert after[("tawasul_agi_decision_seconds_bucket", (("le", "+Inf"), ("script", "route_call")))] >= 2
        assert after[rejected] - before.get(rejected, 0) == 1
        # only from this machine: the server listens on loopback
        assert not _listens_beyond_loopback(metrics_port)
    finally:
        assert stop(process) == 0
    lines = log.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line parses
    assert lines and all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert any(e["level"] == "WARNING" and "rejected" in e["message"] and "GET / HTTP" in e["message"]
               for e in entries)
    assert any("deny unknown_device" in e["message"] for e in entries)


def _listens_beyond_loopback(port: int) -> bool:
    with open("/proc/net/tcp") as table:
        for row in table.read().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, found = local.split(":")
            if int(found, 16) == port and state == "0A" and address != "0100007F":
                return True
    return False


def _sign_in(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{base}/login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    opener.open(urllib.request.Request(f"{base}/login", headers={"Referer": f"{base}/login"},
                                       data=urllib.parse.urlencode({"csrf_token": token, "username": username,
                                                                    "password": password}).encode()), timeout=10)
    return opener


def test_web_metrics_count_the_outbox_and_every_workers_console_streams(seeded, tmp_path):
    settings, database, passwords = seeded
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "web.log", "w") as out:
        process = tawasul(["web", "serve", "--workers", "2", "--threads", "4"],
                          environ(settings, TAWASUL_WEB_PORT=str(port), TAWASUL_LOG_FORMAT="json"),
                          stdout=out, stderr=subprocess.STDOUT)
    unsent = ("tawasul_outbox_unsent_messages", ())
    streams = ("tawasul_console_streams_open", ())
    try:
        wait_http(f"{base}/metrics", process)
        before = scrape(f"{base}/metrics")
        with database.write() as session:
            outbox.queue(session, "+966551234567", "تواصل: رسالة تجريبية")
        assert scrape(f"{base}/metrics")[unsent] == before[unsent] + 1
        failed = ("tawasul_outbox_failed_messages", ())
        with database.write() as session:  # as the sender marks a message the gateway refused
            session.execute(sa.update(OutboxMessage).values(status="failed"))
        after = scrape(f"{base}/metrics")
        assert after[failed] == before[failed] + before[unsent] + 1 and after[unsent] == 0

        # Not for a request a proxy forwarded, unless it carries the token.
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(f"{base}/metrics", {"X-Forwarded-For": "203.0.113.9"})
        assert refused.value.code == 404
        token = (settings.secrets_dir / "metrics-token").read_text().strip()
        assert stat_mode(settings.secrets_dir / "metrics-token") == 0o600
        assert unsent in scrape(f"{base}/metrics", {"X-Forwarded-For": "203.0.113.9",
                                                   "Authorization": f"Bearer {token}"})

        # Two console streams, on whichever workers: the count is the sum.
        opened = [_sign_in(base, "governor_office", passwords["governor_office"]).open(
            f"{base}/console/stream", timeout=10) for _ in range(2)]
        for stream in opened:
            assert stream.readline().startswith(b"retry:")
        assert scrape(f"{base}/metrics")[streams] == 2
        for stream in opened:
            stream.close()
        # A closed stream is noticed at its next write (a keep-alive within ~15 s).
        wait_for(lambda: scrape(f"{base}/metrics")[streams] == 0, 40, "the streams to close")
    finally:
        stop(process)
    for line in (tmp_path / "web.log").read_text().splitlines():
        json.loads(line)  # gunicorn's own log lines and its access log too


def stat_mode(path) -> int:
    return path.stat().st_mode & 0o777


class FakeAmi:
    """An AMI that accepts any login, answers any action with Success, and can drop its client."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _serve(client):
        try:
            client.sendall(b"Asterisk Call Manager/9.0.0\r\n")
            buffer = b""
            while chunk := client.recv(4096):
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    block, buffer = buffer.split(b"\r\n\r\n", 1)
                    action_id = re.search(rb"(?im)^ActionID: (.*)$", block)
                    reply = b"Response: Success\r\nMessage: ok\r\n"
                    if action_id:
                        reply += b"ActionID: " + action_id.group(1).strip() + b"\r\n"
                    client.sendall(reply + b"\r\n")
        except OSError:
            pass

    def drop_clients(self):
        for client in self.clients:
            client.shutdown(socket.SHUT_RDWR)
            client.close()
        self.clients.clear()

    def close(self):
        self.drop_clients()
        self.sock.close()


def test_call_watcher_metrics_count_ami_reconnects(seeded, tmp_path):
    settings, _database, _passwords = seeded
    ami, metrics_port = FakeAmi(), free_port()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with open(tmp_path / "calls.log", "w") as out:
        process = tawasul(["call", "watch"], environ(settings, TAWASUL_AMI_PORT=str(ami.port),
                                                     TAWASUL_CALLWATCH_METRICS_PORT=str(metrics_port)),
                          stderr=out)
    connected, reconnects = ("tawasul_ami_connected", ()), ("tawasul_ami_reconnects_total", ())
    try:
        wait_http(url, process)
        wait_for(lambda: scrape(url)[connected] == 1, 20, "the first login")
        assert scrape(url)[reconnects] == 0
        ami.drop_clients()
        wait_for(lambda: scrape(url)[reconnects] == 1, 20, "a reconnection")
        assert scrape(url)[connected] == 1
        assert ("tawasul_ami_events_dropped_total", ()) in scrape(url)
    finally:
        assert stop(process) == 0, (tmp_path / "calls.log").read_text()
        ami.close()

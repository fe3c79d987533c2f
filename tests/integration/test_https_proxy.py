"""The web behind the README's nginx server block, for real: HTTPS in front of `tawasul web serve`
with `web_proxies = 1`, and each client rate limited on its own address."""
from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tawasul import demo
from tawasul.db import Database, upgrade
from tests.live import free_port, stop, tawasul, wait_for, wait_http

README = Path(__file__).resolve().parents[2] / "README.md"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx_conf(folder: Path, https_port: int, web_port: int) -> Path:
    """README's server block, listening on a loopback port, with a throwaway certificate."""
    block = re.search(r"```nginx\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    assert "proxy_pass http://127.0.0.1:8080;" in block and "/etc/ssl/tawasul/" in block
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=tawasul.example.gov.sa", "-keyout", str(folder / "privkey.pem"),
                    "-out", str(folder / "fullchain.pem")], check=True, capture_output=True)
    block = (block.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
             .replace("/etc/ssl/tawasul/", f"{folder}/")
             .replace("http://127.0.0.1:8080", f"http://127.0.0.1:{web_port}"))
    temp = " ".join(f"{kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = folder / "nginx.conf"
    conf.write_text(f"daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;\n"
                    f"events {{}}\nhttp {{ access_log off; {temp}\n{block}\n}}\n", encoding="utf-8")
    return conf


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _https(port: int, client_address: str = "127.0.0.1") -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, source_address=(client_address, 0),
                                       context=ssl._create_unverified_context())  # a throwaway certificate


def _track_form(port: int) -> int:
    """The tracking page's form over HTTPS, as a browser sends it (cookie, CSRF token, Referer)."""
    connection = _https(port, "127.0.0.4")
    connection.request("GET", "/track/")
    response = connection.getresponse()
    cookie = "; ".join(value.split(";")[0] for name, value in response.getheaders() if name.lower() == "set-cookie")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.read().decode()).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "reference": "C-ZZZZ-ZZZZ-ZZZZ", "identity": "0551234567"})
    connection.request("POST", "/track/", form, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
                                                 "Referer": f"https://127.0.0.1:{port}/track/"})
    status = connection.getresponse().status
    connection.close()
    return status


def _track(port: int, client_address: str, forged: str) -> int:
    """Public tracking of an unknown reference over HTTPS, from this loopback address."""
    connection = _https(port, client_address)
    body = json.dumps({"reference": "C-ZZZZ-ZZZZ-ZZZZ", "identity": "0551234567"})
    connection.request("POST", "/api/v1/track", body, {"Content-Type": "application/json", "X-Forwarded-For": forged})
    status = connection.getresponse().status
    connection.close()
    return status


@pytest.mark.integration
def test_behind_nginx_each_client_has_its_own_rate_limit_and_forms_work_over_https(settings, tmp_path):
    assert Path(NGINX).exists(), "nginx is not installed: run provisioning/install-system.sh"
    settings.state_dir.mkdir(parents=True)
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    with db.write() as session:
        demo.seed(session, settings)
    db.dispose()
    web_port, https_port = free_port(), free_port()
    web = tawasul(["web", "serve", "--workers", "1"], {
        "TAWASUL_STATE_DIR": str(settings.state_dir), "TAWASUL_DEMO": "1", "TAWASUL_WEB_PORT": str(web_port),
        "TAWASUL_CONFIG": str(tmp_path / "none.toml"), "TAWASUL_WEB_PROXIES": "1",
        "TAWASUL_PUBLIC_RATE_LIMIT": "3 per minute"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = subprocess.Popen([NGINX, "-c", str(_nginx_conf(tmp_path, https_port, web_port))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{web_port}/healthz", web)
        wait_for(lambda: nginx.poll() is not None or _listening(https_port), 10, "nginx listening")
        assert nginx.poll() is None, nginx.stderr.read().decode()
        # Both clients claim the same address; nginx adds the real one, which the app takes.
        assert [_track(https_port, "127.0.0.2", "203.0.113.5") for _ in range(4)] == [404, 404, 404, 429]
        assert [_track(https_port, "127.0.0.3", "203.0.113.5") for _ in range(2)] == [404, 404]
        # Over HTTPS (X-Forwarded-Proto) Flask-WTF also checks the Referer against the host: nginx must
        # pass the Host with its port. 404 is "no such request"; a refused form would be 400.
        assert _track_form(https_port) == 404
        # /metrics: never through the proxy, even from this machine; straight to the web, yes.
        proxied = _https(https_port)
        proxied.request("GET", "/metrics")
        assert proxied.getresponse().status == 404
        direct = http.client.HTTPConnection("127.0.0.1", web_port, timeout=10)
        direct.request("GET", "/metrics")
        assert direct.getresponse().status == 200
    finally:
        stop(nginx)
        stop(web)

"""Settings, layered: defaults, then a TOML file, then TAWASUL_* environment, then flags.

The file is `$TAWASUL_CONFIG` if set, else `<state_dir>/tawasul.toml` if it exists.
Every field can be set in each layer under its own name (env: upper-cased, `TAWASUL_` prefix).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import tomllib
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_SECRET_KEY = "insecure-demo-secret-key"
# 32 random bytes as text: 43 URL-safe base64 characters or 64 hex digits, which zlib cannot shrink
# below 49 bytes; a key of repeats (a word over and over, a run of one letter) shrinks well below 45.
MIN_SECRET_KEY_LENGTH = 43
MIN_SECRET_KEY_COMPRESSED = 45


class SettingsError(Exception):
    """A setting has a value the system cannot run with."""


@dataclass(frozen=True)
class Settings:
    state_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite in the state folder
    secret_key: str = DEFAULT_SECRET_KEY
    demo: bool = False
    timezone: str = "Asia/Riyadh"

    web_host: str = "127.0.0.1"
    web_port: int = 8080
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "tawasul"  # the AMI users' prefix: tawasul-web, tawasul-watch, tawasul-provision
    sip_host: str = "127.0.0.1"
    sip_tls_port: int = 5061
    sip_udp_port: int = 5060  # plain UDP on 127.0.0.1, only with load_test on (SIPp); never for phones
    # Asterisk's HTTPS port (on sip_host): the governor's console page connects its in-browser
    # video endpoint here over a secure websocket (wss://sip_host:webrtc_port/ws). 0: no
    # in-browser endpoint (the governor's desk phone only).
    webrtc_port: int = 8089
    # The governor's desk phone may register and call only from these networks (comma-separated
    # addresses or CIDRs, like a centre's allowed networks): a leaked desk password is then no use
    # elsewhere. The default is this machine only; set the governor's office network in production.
    # Empty: nowhere.
    desk_networks: str = "127.0.0.0/8"
    rtp_start: int = 10000
    rtp_end: int = 20000

    # A machine-wide cache, so every clone on the machine shares one Asterisk root filesystem.
    asterisk_cache: Path = Path("/var/cache/tawasul")
    # Asterisk runs elsewhere (its own container, docker/compose.yaml) and its instance folder is
    # here, at the same path on both sides: this process renders into it and never starts Asterisk.
    # Empty: the local runtime (provisioning/runtime.py) under asterisk_cache.
    asterisk_instance: str = ""
    # Routing windows around a slot's start, in minutes.
    early_minutes: int = 10
    late_minutes: int = 15
    # Benchmarks only: a `[load]` SIP endpoint on the loopback UDP transport, matched by source
    # address 127.0.0.2, with no auth, and the `load-test` dialplan context (provisioning/render.py).
    # Never turn it on in production.
    load_test: bool = False
    # Public forms and tracking (web and API), per client address and web worker (flask-limiter syntax).
    public_rate_limit: str = "10 per minute"
    # Sign-in and password-change attempts, per client address (beside the per-account throttle).
    sign_in_rate_limit: str = "10 per minute"
    # Public tracking of one reference number, from any address (web and API together).
    tracking_reference_limit: str = "20 per hour"
    # Where the web workers keep their rate-limit counters: empty for an SQLite file in the state
    # folder (one host); a database URL (e.g. the PostgreSQL one) when several web hosts share limits.
    rate_limits_url: str = ""
    # Files sent with public complaints, all together over the last 24 hours (MB), and the free disk
    # space always left in the state folder (MB): past either, filings with files are refused.
    public_attachments_mb_a_day: int = 500
    free_space_floor_mb: int = 1024
    # Reverse proxies in front of the web (1 for an nginx that terminates HTTPS): the client's address
    # and scheme are then read from the X-Forwarded-For and X-Forwarded-Proto headers that many proxies
    # add. 0: those headers are ignored, since any client could send them.
    web_proxies: int = 0
    # A signed-in web session ends after this many minutes without a request.
    session_idle_minutes: int = 30

    # SMS (tawasul/sms): the outbox is sent through an HTTP gateway. An empty URL: no sender runs.
    # The gateway's credentials are in <state_dir>/secrets/sms-gateway (TOML, mode 0600), never here.
    sms_gateway_url: str = ""
    sms_request: str = "custom"  # unifonic-form, unifonic-json, taqnyat, msegat or custom
    sms_body_template: str = ('{"to": {{ to|tojson }}, "body": {{ body|tojson }}, '
                              '"sender": {{ sender|tojson }}, "key": {{ key|tojson }}}')  # custom only (Jinja2)
    sms_content_type: str = "application/json"  # custom only
    sms_headers: str = ""  # custom only: "Name: value" lines (Jinja2, e.g. {{ secret.token }})
    sms_sender_id: str = ""
    sms_max_attempts: int = 8
    sms_timeout: float = 10.0       # seconds, each of connect, write and read
    sms_retry_seconds: float = 30.0  # the first retry's delay; doubled for each further try, with jitter
    sms_retry_max_seconds: float = 3600.0
    sms_lease_seconds: float = 120.0  # a message being sent is another sender's to retry after this
    sms_poll_seconds: float = 3.0
    sms_reminders: str = "24h,1h"  # before each booked session; empty: no reminders
    # "text", or "json": every process logs one JSON object a line (tawasul/logs.py).
    log_format: str = "text"
    # Prometheus metrics of the FastAGI server and of the call watcher, each on its own port on 127.0.0.1
    # (0: off). The web serves its own at /metrics (web/metrics.py).
    agi_metrics_port: int = 0
    callwatch_metrics_port: int = 0
    # Who may speak FastAGI to `tawasul agi serve`: Asterisk's addresses (addresses or CIDRs, comma-separated).
    # Anyone else is closed at once; Asterisk also proves itself with the secret in <state_dir>/secrets/agi.
    agi_allowed_peers: str = "127.0.0.1,::1"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir.resolve() / 'tawasul.db'}"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    def require_production_secret(self) -> None:
        """Outside demo mode, refuse the well-known default secret key, and any key too short or too
        plain to be 32 random bytes: it signs every session cookie and keys the phones' tokens."""
        if self.demo:
            return
        if self.secret_key == DEFAULT_SECRET_KEY:
            raise SettingsError(
                "refusing to start: set TAWASUL_SECRET_KEY (or secret_key in the settings file); "
                "the default key is only allowed in demo mode")
        if (len(self.secret_key) < MIN_SECRET_KEY_LENGTH
                or len(zlib.compress(self.secret_key.encode(), 9)) < MIN_SECRET_KEY_COMPRESSED):
            raise SettingsError(
                f"refusing to start: the secret key (TAWASUL_SECRET_KEY) must be at least {MIN_SECRET_KEY_LENGTH} "
                "random characters; make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")


def as_environ(settings: Settings) -> dict[str, str]:
    """The settings as TAWASUL_* variables, so a child process loads exactly these."""
    env = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, Path):
            value = value.resolve()
        env[f"TAWASUL_{f.name.upper()}"] = str(int(value)) if isinstance(value, bool) else str(value)
    return env


def _coerce(name: str, raw, target_type):
    if target_type is bool or target_type == "bool":
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")
    if target_type is int or target_type == "int":
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    if target_type is float or target_type == "float":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if target_type is Path or target_type == "Path":
        return Path(raw)
    return str(raw)


def load(overrides: dict | None = None, environ: dict | None = None) -> Settings:
    """Build settings from the four layers. `overrides` are the flags (None values ignored)."""
    environ = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    known = {f.name: f.type for f in fields(Settings)}

    env_values = {
        name: environ[f"TAWASUL_{name.upper()}"]
        for name in known
        if f"TAWASUL_{name.upper()}" in environ
    }
    state_dir = Path(overrides.get("state_dir") or env_values.get("state_dir") or Settings.state_dir)
    config_file = Path(environ["TAWASUL_CONFIG"]) if environ.get("TAWASUL_CONFIG") else state_dir / "tawasul.toml"

    file_values: dict = {}
    if config_file.is_file():
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config_file}: {exc}") from None
        unknown = set(file_values) - set(known)
        if unknown:
            raise SettingsError(f"{config_file}: unknown settings {', '.join(sorted(unknown))}")

    merged: dict = {}
    for layer in (file_values, env_values, overrides):
        for name, raw in layer.items():
            if name in known:
                merged[name] = _coerce(name, raw, known[name])
    if merged.get("web_proxies", 0) < 0:
        raise SettingsError(f"web_proxies: expected 0 or more, got {merged['web_proxies']}")
    if merged.get("session_idle_minutes", 1) < 1:
        raise SettingsError(f"session_idle_minutes: expected 1 or more, got {merged['session_idle_minutes']}")
    if merged.get("log_format", "text") not in ("text", "json"):
        raise SettingsError(f"log_format: expected text or json, got {merged['log_format']!r}")
    if "agi_allowed_peers" in merged:
        try:
            peer_networks(merged["agi_allowed_peers"])
        except ValueError as exc:
            raise SettingsError(f"agi_allowed_peers: {exc}") from None
    return dataclasses.replace(Settings(), **merged)


def peer_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """agi_allowed_peers as networks: "127.0.0.1, 10.20.0.0/24" (ValueError names a bad entry)."""
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or CIDR") from None
    if not networks:
        raise ValueError("no address given (Asterisk could not reach the FastAGI server)")
    return tuple(networks)


def generated_secret(settings: Settings, name: str, nbytes: int = 24) -> str:
    """A random secret kept in the state folder (mode 0600), made on first use. Made by root (a
    command run as root), it still belongs to the state folder's owner, who runs the services."""
    path = settings.secrets_dir / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    settings.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    owner = settings.state_dir.stat()
    if os.geteuid() == 0:
        os.chown(settings.secrets_dir, owner.st_uid, owner.st_gid)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text(encoding="utf-8").strip()
    if os.geteuid() == 0:
        os.fchown(fd, owner.st_uid, owner.st_gid)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def agi_secret(settings: Settings) -> str:
    """The secret Asterisk's dialplan holds for the FastAGI server (extensions.conf's globals)."""
    return generated_secret(settings, "agi")

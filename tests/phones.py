"""Real video phones for integration tests: baresip started from exported profiles.

    phone = BaresipPhone(profile_dir)      # a folder written by `tawasul phones export --format baresip`
    phone.start(); phone.wait_registered()
    phone.dial("100"); phone.wait_event("CALL_ESTABLISHED", 15)
    phone.video_received()                 # the log line `video: receiving with resolution W x H`
    phone.stop()

Each phone is `baresip -f DIR`, a child in its own process group (stopped with the group, so
no orphan survives a test), its stdout and stderr in `DIR/baresip.log`. It is driven over
baresip's ctrl_tcp module: netstrings holding JSON, `{"command":"dial","params":"100","token":"t1"}`
out; responses `{"response":true,"ok":...,"data":...,"token":"t1"}` and events
`{"event":true,"type":"CALL_ESTABLISHED","class":"call",...}` back, read by a background
thread into a list that `wait_event` searches.

Fixtures:
- `phones` (per test) and `module_phones` (per module): a PhoneFactory bound to the session's
  provisioned Asterisk; `factory.start("centre-bdr-1")` exports the device's profile into a
  temporary folder and starts the phone; every phone it started is stopped in teardown.
- `agi_server` (session): the real FastAGI server, `tawasul agi serve`, as a child process
  on the test Asterisk's AGI port with the fixture's database. Import it in conftest.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"

# baresip 1.0 (src/video.c) on the first decoded frame of a stream.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
VIDEO_RX = re.compile(r"video: receiving with resolution (\d+) x (\d+)")
# baresip 1.0's call status line (tx/rx): `audio=64000/64000 video=30218/30242 (bit/s) efps=25.0/23.8`
STATUS_LINE = re.compile(r"audio=(\d+)/(\d+) video=(\d+)/(\d+) \(bit/s\) efps=([\d.]+)/([\d.]+)")


class PhoneError(RuntimeError):
    pass


# --------------------------------------------------------------------------- netstrings


def netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class NetstringReader:
    """Split a byte stream into netstring payloads."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        out = []
        while True:
            colon = self.buffer.find(b":")
            if colon < 0:
                if len(self.buffer) > 12:
                    raise PhoneError(f"not a netstring: {self.buffer[:40]!r}")
                return out
            length = int(self.buffer[:colon])
            end = colon + 1 + length
            if len(self.buffer) < end + 1:
                return out
            if self.buffer[end:end + 1] != b",":
                raise PhoneError("netstring without its trailing comma")
            out.append(self.buffer[colon + 1:end])
            self.buffer = self.buffer[end + 1:]


# --------------------------------------------------------------------------- the phone


def _read_profile(folder: Path) -> dict:
    return json.loads((folder / "profile.json").read_text(encoding="utf-8"))


class BaresipPhone:
    """One baresip process run from a profile folder; see the module docstring."""

    def __init__(self, profile_dir: Path | str, name: str | None = None, verbose: bool = True):
        self.verbose = verbose  # -v: debug lines, among them baresip 1.0's "video: receiving with resolution"
        self.dir = Path(profile_dir).resolve()
        self.profile = _read_profile(self.dir)
        self.name = name or self.profile.get("sip_user") or self.dir.name
        self.ctrl_port = int(self.profile["ctrl_port"])
        self.log_path = self.dir / "baresip.log"
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.events: list[dict] = []
        self._seen: set[int] = set()        # indexes of events wait_event has handed out
        self._responses: dict[str, dict] = {}
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._token = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<BaresipPhone {self.name} ctrl={self.ctrl_port} pid={self.proc.pid if self.proc else None}>"

    # -- lifecycle

    def start(self, timeout: float = 10) -> "BaresipPhone":
        log = open(self.log_path, "ab")
        try:
            # HOME in the folder: baresip writes nothing outside its own profile.
            self.proc = subprocess.Popen(
                [BARESIP, "-f", str(self.dir), *(["-v"] if self.verbose else [])], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir,
                env={**os.environ, "HOME": str(self.dir)})
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise PhoneError(f"{self.name}: baresip exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PhoneError(f"{self.name}: ctrl_tcp port {self.ctrl_port} never opened:\n{self.log_tail()}")
                time.sleep(0.1)
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, name=f"baresip-{self.name}", daemon=True)
        self._reader.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        """Quit baresip (its process group), gently then firmly. Safe to call twice."""
        self._closed = True
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc is not None:
            try:  # anything else left in the group (baresip forks nothing, but be sure)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(2)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _read_loop(self) -> None:
        parser = NetstringReader()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._cond.notify_all()
                return
            for payload in parser.feed(data):
                try:
                    message = json.loads(payload.decode("utf-8", "replace"))
                except ValueError:
                    continue
                with self._cond:
                    if message.get("response"):
                        self._responses[str(message.get("token", ""))] = message
                    elif message.get("event"):
                        message["_at"] = time.monotonic()
                        self.events.append(message)
                    self._cond.notify_all()

    # -- control

    def command(self, command: str, params: str = "", timeout: float = 5) -> dict:
        """Send a menu command over ctrl_tcp; its response ({"ok":..., "data": text})."""
        with self._cond:
            self._token += 1
            token = f"t{self._token}"
        message = {"command": command, "token": token}
        if params:
            message["params"] = params
        self.sock.sendall(netstring(json.dumps(message).encode()))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    raise PhoneError(f"{self.name}: no response to {command!r} within {timeout} s")
                self._cond.wait(min(left, 0.2))
            return self._responses.pop(token)

    def dial(self, uri: str) -> dict:
        return self.command("dial", uri)

    def hangup(self) -> dict:
        return self.command("hangup")

    def accept(self) -> dict:
        return self.command("accept")

    def callstat(self) -> str:
        """baresip's `callstat` text for the current call (RTP counters per stream)."""
        return str(self.command("callstat").get("data", ""))

    # -- events

    def find_events(self, type_: str, since: float = 0.0) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e.get("type") == type_ and e["_at"] >= since]

    def wait_event(self, type_: str | tuple[str, ...], timeout: float = 10, since: float | None = None,
                   where=None) -> dict:
        """The first event of `type_` (one name or several) not yet handed out by wait_event
        (and, with `since`, received at or after that time.monotonic() value). Raises PhoneError."""
        types = (type_,) if isinstance(type_, str) else tuple(type_)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, event in enumerate(self.events):
                    if (index not in self._seen and event.get("type") in types
                            and (since is None or event["_at"] >= since) and (where is None or where(event))):
                        self._seen.add(index)
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e.get("type") for e in self.events]
                    raise PhoneError(f"{self.name}: no {'/'.join(types)} within {timeout} s; events: {seen}\n"
                                     f"{self.log_tail()}")
                if not self.running:
                    raise PhoneError(f"{self.name}: baresip exited while waiting for {types}\n{self.log_tail()}")
                self._cond.wait(min(left, 0.2))

    def registration(self) -> str:
        """"OK", "ERR" or "zzz" (not yet) from baresip's `reginfo` for the phone's account."""
        data = _ANSI.sub("", str(self.command("reginfo").get("data", "")))
        match = re.search(r"^>?\s*sip:\S+\s+(OK|ERR|zzz)\b", data, re.M)
        return match.group(1) if match else "zzz"

    def wait_registration(self, timeout: float = 15) -> dict:
        """The outcome of the first registration: the REGISTER_OK or REGISTER_FAIL event.

        baresip registers as soon as it starts, and ctrl_tcp only sends events to clients
        connected at that moment: the first event is often gone before we connect. Then the
        outcome comes from `reginfo` polling, as {"type": ..., "param": "(from reginfo)"}."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.wait_event(("REGISTER_OK", "REGISTER_FAIL"), 0.3)
            except PhoneError:
                if not self.running or time.monotonic() > deadline:
                    raise
            state = self.registration()
            if state != "zzz":
                return {"event": True, "type": "REGISTER_OK" if state == "OK" else "REGISTER_FAIL",
                        "param": f"(from reginfo: {state})", "_at": time.monotonic()}

    def wait_registered(self, timeout: float = 15) -> dict:
        """REGISTER_OK, or PhoneError (with the failure) if registration failed."""
        event = self.wait_registration(timeout)
        if event["type"] != "REGISTER_OK":
            raise PhoneError(f"{self.name}: registration failed: {event.get('param')}\n{self.log_tail()}")
        return event

    def incoming_calls(self, since: float = 0.0) -> list[str]:
        """Ids of incoming calls first seen at or after `since` (time.monotonic()). With
        answermode=auto baresip 1.0 sends no CALL_INCOMING (it answers at once): any call event
        with direction "incoming" and a new call id is a call that reached the phone."""
        with self._cond:
            before = {e.get("id") for e in self.events if e["_at"] < since}
            new = []
            for e in self.events:
                if (e["_at"] >= since and e.get("direction") == "incoming" and e.get("id")
                        and e["id"] not in before and e["id"] not in new):
                    new.append(e["id"])
            return new

    def has_event(self, type_: str, since: float = 0.0) -> bool:
        return bool(self.find_events(type_, since))

    # -- evidence

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_mark(self) -> int:
        """The log's size now: pass it to `log_since`/`video_received` to look only at what follows."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark: int) -> str:
        with open(self.log_path, "rb") as handle:
            handle.seek(mark)
            return handle.read().decode("utf-8", "replace")

    def video_received(self, since: int = 0) -> tuple[int, int] | None:
        """(width, height) of the first video frame the phone decoded (after log offset `since`)."""
        match = VIDEO_RX.search(self.log_since(since))
        return (int(match.group(1)), int(match.group(2))) if match else None

    def wait_video(self, timeout: float = 15, since: int = 0) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.video_received(since)
            if found:
                return found
            time.sleep(0.2)
        raise PhoneError(f"{self.name}: no decoded video within {timeout} s\n{self.log_tail()}")

    def status(self) -> dict[str, float] | None:
        """The last status line baresip 1.0 prints during a call,
        `[0:00:07] audio=64000/64000 video=30218/30242 (bit/s) efps=25.0/23.8`, as
        {"audio_tx", "audio_rx", "video_tx", "video_rx" (bit/s), "efps_tx", "efps_rx" (frames/s,
        rx = decoded)}; None before any. (`callstat` in 1.0 shows the SDP, not RTP counters; the
        packet totals are printed only when the call ends, with rtp_stats on.)"""
        found = STATUS_LINE.findall(self.log_text())
        if not found:
            return None
        values = [float(v) for v in found[-1]]
        return dict(zip(("audio_tx", "audio_rx", "video_tx", "video_rx", "efps_tx", "efps_rx"), values))

    def audio_received(self) -> float:
        """Audio bit/s received in the current call, from the last status line (0 if none)."""
        return (self.status() or {}).get("audio_rx", 0.0)


# --------------------------------------------------------------------------- profiles


def edit_profile(src: Path, dst: Path, *, accounts=None, port_offset: int = 0) -> Path:
    """A copy of profile folder `src` at `dst`: `accounts(text) -> text` rewrites the accounts
    file; `port_offset` moves its SIP, TLS and ctrl_tcp ports (to run beside the original)."""
    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("baresip.log", "*.wav.tmp"))
    os.chmod(dst, 0o700)
    (dst / "baresip.log").unlink(missing_ok=True)
    if accounts is not None:
        path = dst / "accounts"
        path.write_text(accounts(path.read_text(encoding="utf-8")), encoding="utf-8")
    info = _read_profile(dst)
    if port_offset:
        config = (dst / "config").read_text(encoding="utf-8")
        for key in ("sip_port", "ctrl_port"):
            old, new = info[key], info[key] + port_offset
            config = re.sub(rf"(127\.0\.0\.1|0\.0\.0\.0):{old}\b", rf"\g<1>:{new}", config)
            info[key] = new
        info["tls_port"] = info["sip_port"] + 1
        (dst / "config").write_text(config, encoding="utf-8")
    # paths inside config (tone, CA) still point at src: keep them, src outlives the copy in a test
    (dst / "profile.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return dst


class PhoneFactory:
    """Export devices' baresip profiles from the provisioned database and start phones."""

    def __init__(self, provisioned, folder: Path):
        self.p = provisioned
        self.folder = Path(folder)
        self.started: list[BaresipPhone] = []
        self._count = 0

    def export(self, device: str, *, dump_audio: bool = False, auto_answer: bool | None = None) -> Path:
        from provisioning import phones as profiles
        from tawasul.vault import Vault

        self._count += 1
        out = self.folder / f"{device}-{self._count}"
        with self.p.db.read() as session:
            profiles.export(self.p.settings, session, Vault.for_settings(self.p.settings), device, "baresip",
                            out, auto_answer=auto_answer, dump_audio=dump_audio)
        return out

    def copy(self, src: Path, name: str, **edits) -> Path:
        self._count += 1
        return edit_profile(src, self.folder / f"{name}-{self._count}", **edits)

    def start(self, device_or_dir, *, register: bool = True, timeout: float = 15, **export_kw) -> BaresipPhone:
        """Start a phone from a device's SIP user (exported now) or a profile folder; by default
        wait for REGISTER_OK (raising PhoneError on REGISTER_FAIL)."""
        folder = Path(device_or_dir) if isinstance(device_or_dir, Path) else self.export(device_or_dir, **export_kw)
        phone = BaresipPhone(folder)
        self.started.append(phone)
        phone.start()
        if register:
            phone.wait_registered(timeout)
        return phone

    def stop_all(self) -> None:
        errors = []
        for phone in reversed(self.started):
            try:
                phone.stop()
            except Exception as exc:  # noqa: BLE001 - stop every phone, report after
                errors.append(f"{phone.name}: {exc}")
        self.started.clear()
        if errors:
            raise PhoneError("; ".join(errors))


@pytest.fixture
def phones(provisioned_asterisk, tmp_path):
    factory = PhoneFactory(provisioned_asterisk, tmp_path / "phones")
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def module_phones(provisioned_asterisk, tmp_path_factory):
    factory = PhoneFactory(provisioned_asterisk, tmp_path_factory.mktemp("phones"))
    try:
        yield factory
    finally:
        factory.stop_all()


# --------------------------------------------------------------------------- the FastAGI server


@dataclasses.dataclass
class AgiProcess:
    proc: subprocess.Popen
    log_path: Path
    settings: object

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def decisions(self) -> list[str]:
        """The server's decision lines (`agi: route_call channel=... -> connect ok ...`)."""
        return [line for line in self.log_text().splitlines() if " -> " in line and "agi: " in line]


def start_agi_server(settings, log_path: Path, timeout: float = 20, **overrides) -> AgiProcess:
    """`tawasul agi serve` as a child (own process group) with exactly `settings` (TAWASUL_*)."""
    from tawasul.settings import as_environ
    from tests.live import tawasul

    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    log = open(log_path, "ab")
    try:
        proc = tawasul(["agi", "serve"], env=as_environ(settings), stdout=log, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL)
    finally:
        log.close()
    server = AgiProcess(proc, log_path, settings)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"tawasul agi serve exited with {proc.returncode}:\n{server.log_text()}")
        try:
            socket.create_connection((settings.agi_host, settings.agi_port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                stop_agi_server(server)
                raise RuntimeError(f"the AGI server never listened on {settings.agi_port}:\n{server.log_text()}")
            time.sleep(0.1)
    return server


def stop_agi_server(server: AgiProcess) -> None:
    from tests.live import stop

    stop(server.proc)


@pytest.fixture(scope="session")
def agi_server(provisioned_asterisk, tmp_path_factory):
    """The real FastAGI server for the session's Asterisk (its agi_port, its database).
    Up from the first test that asks for it to the end of the session."""
    server = start_agi_server(provisioned_asterisk.settings, tmp_path_factory.mktemp("agi") / "agi.log")
    try:
        yield server
    finally:
        stop_agi_server(server)

"""docker/compose.yaml for real, with podman and podman-compose: the images built from Debian's mirror
(docker/build-images.sh, once a machine: reused when their inputs have not changed), the stack up
under a project name of its own with free ports, in demo mode.

A session is booked through the web's API (a token made in the web container); a real baresip phone
outside the containers, from the centre's profile the migrate step exported, calls the governor: the
FastAGI container decides `connect`, the desk phone (also outside) answers, the call watcher
container records the call, the SMS container sends the booking's message to a gateway on the host,
and the web answers over HTTP. Everything (containers, volumes) is removed afterwards, failed or not.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tawasul.db import Database
from tawasul.models import Appointment, Call, GovernorSchedule
from tests.live import free_port, wait_for
from tests.phones import BaresipPhone, edit_profile
from tests.sms_gateway import FakeGateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ENV = {**os.environ, "CONTAINERS_CONF": str(DOCKER / "containers.conf")}
STATE = "/var/lib/tawasul"  # the state folder inside the app containers (Containerfile.app)
CENTRE, DESK = "centre-bdr-1", "governor-desk-1"
SERVICES = ("db", "migrate", "agi", "asterisk", "callwatch", "sms", "web")


def run(args: list, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=kwargs.pop("env", ENV),
                          timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)
    if check:
        assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    started = time.monotonic()
    done = run(["bash", DOCKER / "build-images.sh"], timeout=1800)
    print(f"images ready in {time.monotonic() - started:.0f} s\n{done.stderr}")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("TAWASUL_"))


class Stack:
    def __init__(self, project: str, folder: Path, env: dict[str, str], images: dict[str, str]):
        self.project, self.folder, self.env = project, folder, env
        self.compose = ["podman-compose", "--podman-path", DOCKER / "podman-host-network", "-p", project,
                        "-f", folder / "compose.yaml"]
        self.compose_env = {**ENV, **images}
        self.web = f"http://127.0.0.1:{env['TAWASUL_WEB_PORT']}"
        self.db = Database(f"postgresql+psycopg://tawasul:{env['POSTGRES_PASSWORD']}@127.0.0.1:"
                           f"{env['POSTGRES_PORT']}/tawasul")

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def logs(self, service: str) -> str:
        done = run(["podman", "logs", self.container(service)], check=False)
        return done.stdout + done.stderr

    def state(self) -> Path:
        """The state volume's folder on the host."""
        return Path(run(["podman", "volume", "inspect", "--format", "{{.Mountpoint}}",
                         f"{self.project}_state"]).stdout.strip())

    def tawasul(self, *args: str) -> str:
        return run(["podman", "exec", self.container("web"), "tawasul", *args], timeout=120).stdout

    def asterisk(self, command: str) -> str:
        return run(["podman", "exec", self.container("asterisk"), "asterisk", "-C",
                    "/srv/tawasul-asterisk/etc/asterisk.conf", "-rx", command], timeout=60).stdout

    def remove(self) -> None:
        """Containers and volumes of this project, whatever state they are in."""
        run([*self.compose, "down", "-v"], env=self.compose_env, check=False, timeout=300)
        label = f"label=io.podman.compose.project={self.project}"
        left = run(["podman", "ps", "-aq", "--filter", label], check=False).stdout.split()
        if left:
            run(["podman", "rm", "-f", *left], check=False)
        volumes = run(["podman", "volume", "ls", "-q", "--filter", label], check=False).stdout.split()
        if volumes:
            run(["podman", "volume", "rm", "-f", *volumes], check=False)
        run(["podman", "network", "rm", "-f", f"{self.project}_default"], check=False)  # made by podman-compose 1.0.3



@pytest.fixture(scope="module")
def gateway():
    with FakeGateway() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(images, gateway, tmp_path_factory):
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(DOCKER / "compose.yaml", folder / "compose.yaml")
    rtp = 20000 + (os.getpid() % 100) * 100  # Asterisk's RTP: 100 ports below the phones' and the ephemeral ones
    env = {
        "POSTGRES_PASSWORD": secrets.token_hex(16), "POSTGRES_PORT": str(free_port()),
        "TAWASUL_SECRET_KEY": secrets.token_urlsafe(32), "TAWASUL_DEMO": "1",
        "TAWASUL_WEB_PORT": str(free_port()), "TAWASUL_AGI_PORT": str(free_port()),
        "TAWASUL_AMI_PORT": str(free_port()), "TAWASUL_SIP_TLS_PORT": str(free_port()),
        "TAWASUL_SIP_UDP_PORT": str(free_port()), "TAWASUL_WEBRTC_PORT": str(free_port()),
        "TAWASUL_RTP_START": str(rtp), "TAWASUL_RTP_END": str(rtp + 99),
        "TAWASUL_SMS_GATEWAY_URL": gateway.url, "TAWASUL_SMS_POLL_SECONDS": "0.5", "TAWASUL_SMS_REMINDERS": "",
    }
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    project = f"tawasulci{os.getpid()}"
    stack = Stack(project, folder, env, images)
    started = time.monotonic()
    try:
        up = run([*stack.compose, "up", "-d"], env=stack.compose_env, timeout=600)
        made = run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter",
                    f"label=io.podman.compose.project={project}"]).stdout.split()
        assert sorted(made) == sorted(stack.container(s) for s in SERVICES), up.stdout[-3000:] + up.stderr[-3000:]
        wait_for(lambda: _answers(stack.web + "/healthz"), 300, "the web container's /healthz")
        print(f"stack up in {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        for service in SERVICES:
            print(f"--- {service}\n{stack.logs(service)[-4000:]}")
        stack.db.dispose()
        stack.remove()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def _open_schedule_all_day(stack: Stack) -> ZoneInfo:
    """Video sessions all day, every day, in back-to-back 5-minute slots, so one starts within the
    call's early window whenever the test runs (what IT would set in /admin; the schedule's own hours
    are not under test here). Returns the region's zone."""
    with stack.db.write() as session:
        row = session.scalars(sa.select(GovernorSchedule)).one()
        row.session_days, row.video_start, row.video_end = "0,1,2,3,4,5,6", dt.time(0, 0), dt.time(23, 59, 59)
        row.slot_minutes, row.buffer_minutes = 5, 0
        return ZoneInfo(row.timezone)


def _api(stack: Stack, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{stack.web}/api/v1{path}", method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


def _book_next_slot(stack: Stack) -> tuple[str, dt.datetime]:
    """Staff book the next free video slot at BDR through the web's API (as an integration would,
    with a token made in the web container); returns the reference and the slot's start."""
    zone = _open_schedule_all_day(stack)
    token = stack.tawasul("api-token", "create", "compose-test", "--role", "staff").split()[-1]
    today = dt.datetime.now(zone).date()
    starts = [dt.datetime.fromisoformat(slot["start"])
              for day in (today, today + dt.timedelta(days=1))
              for slot in _api(stack, token, "GET", f"/slots?date={day.isoformat()}&kind=video")["slots"]]
    start = min(starts)
    booked = _api(stack, token, "POST", "/appointments", {
        "national_id": "1123456780", "name": "Compose Citizen", "mobile": "0551234567", "kind": "video",
        "centre": "BDR", "at": start.isoformat()})
    return booked["reference"], start


def _phone(stack: Stack, device: str, folder: Path) -> BaresipPhone:
    """The device's profile that the migrate step exported into the state volume, copied out; its
    paths (tone, CA) rewritten from the container's folder to the copy."""
    source = stack.state() / "phones" / device
    copy = edit_profile(source, folder / device)
    config = (copy / "config").read_text(encoding="utf-8")
    (copy / "config").write_text(config.replace(f"{STATE}/phones/{device}", str(copy)), encoding="utf-8")
    phone = BaresipPhone(copy)
    phone.start()
    return phone


def _decisions(stack: Stack) -> list[str]:
    """The FastAGI container's decision lines (`route_call channel=... -> connect ok ...`)."""
    return [line for line in stack.logs("agi").splitlines() if "route_call" in line and " -> " in line]


def test_a_booked_call_from_outside_reaches_the_desk_through_the_containers(stack, gateway, tmp_path):
    # Every service runs as its own user, never root.
    expected = {"agi": "tawasul", "web": "tawasul", "callwatch": "tawasul", "sms": "tawasul",
                "asterisk": "asterisk", "db": "postgres"}
    users = {service: set(run(["podman", "top", stack.container(service), "user"]).stdout.split()[1:])
             for service in expected}
    assert users == {service: {user} for service, user in expected.items()}, users
    caps = {service: run(["podman", "inspect", "--format", "{{.EffectiveCaps}}",
                          stack.container(service)]).stdout.strip() for service in expected}
    assert set(caps.values()) == {"[]"}, caps

    phones = []
    try:
        desk = _phone(stack, DESK, tmp_path)
        phones.append(desk)
        centre = _phone(stack, CENTRE, tmp_path)
        phones.append(centre)
        desk.wait_registered(30)
        centre.wait_registered(30)
        contacts = stack.asterisk("pjsip show contacts")  # the README's way to Asterisk's CLI
        assert CENTRE in contacts and DESK in contacts, contacts

        # Nothing booked: the FastAGI container refuses, the desk never rings.
        since = time.monotonic()
        centre.dial("100")
        wait_for(lambda: any("-> deny" in line for line in _decisions(stack)), 30, "the FastAGI container's refusal")
        centre.hangup()
        centre.wait_event("CALL_CLOSED", 15, since=since)
        assert desk.incoming_calls(since) == []

        reference, start = _book_next_slot(stack)
        early = (start - dt.datetime.now(dt.timezone.utc)).total_seconds()
        assert early < 600, f"the next slot starts in {early:.0f} s: beyond the early window"

        since = time.monotonic()
        centre.dial("100")
        desk.wait_event("CALL_ESTABLISHED", 30, since=since)
        centre.wait_event("CALL_ESTABLISHED", 30, since=since)
        centre.wait_video(20)
        desk.wait_video(20)
        centre.hangup()
        centre.wait_event("CALL_CLOSED", 15, since=since)
    finally:
        for phone in phones:
            phone.stop()

    assert any("-> connect" in line for line in _decisions(stack)), _decisions(stack)
    # The refusal was spoken: Asterisk read the prompts the migrate step made in the shared volumes.
    assert "Playback failed" not in stack.logs("asterisk")
    with stack.db.read() as session:
        appointment = session.scalars(sa.select(Appointment).where(Appointment.reference == reference)).one()
        appointment_id = appointment.id

    def recorded():
        with stack.db.read() as session:
            return session.scalars(sa.select(Call).where(Call.appointment_id == appointment_id,
                                                         Call.end_at.is_not(None))).first()
    call = wait_for(recorded, 30, "the call watcher's record of the call")
    assert call.answer_at is not None and call.decision == "connect"

    # The booking's SMS, through the SMS container, to the gateway on the host.
    wait_for(lambda: any(m.get("to", "").endswith("551234567") for m in gateway.delivered.values()), 60,
             "the booking's SMS at the gateway")

    # The web, from outside: the public front page in Arabic and the API's description.
    with urllib.request.urlopen(stack.web + "/", timeout=10) as response:
        assert response.status == 200 and "تواصل" in response.read().decode("utf-8")
    with urllib.request.urlopen(stack.web + "/api/v1/openapi.json", timeout=10) as response:
        assert json.loads(response.read())["openapi"]

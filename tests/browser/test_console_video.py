"""The governor takes a session in the console page itself: real Chromium (fake camera) registers
to the real Asterisk over its secure websocket with credentials issued for that page, "connect
next" rings the page (the page's hang-up button declines a first ring: the centre is not rung),
the governor answers, Asterisk rings the centre's real baresip phone, and
video frames decode on both sides over DTLS-SRTP (browser) and SDES-SRTP over TLS (phone)."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import subprocess
import time

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioning import certs, console_endpoint
from tawasul import references, users
from tawasul.models import Appointment, AppointmentKind, AppointmentStatus, Call, Centre, Citizen, Role
from tawasul.settings import as_environ
from tawasul.validation import make_national_id
from tests.asterisk_fixture import ami_call
from tests.browser.conftest import CHROMIUM_ARGS
from tests.live import free_port, stop, tawasul, wait_for, wait_http

pytestmark = pytest.mark.browser

BDR = "centre-bdr-1"
CITIZEN = "سلمان عبدالله الحربي"


def spki_pin(cert_path) -> str:
    """Chromium's --ignore-certificate-errors-spki-list value for Asterisk's certificate: this
    browser trusts that one key (the deployment CA is not in its store), and no other."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def media_browser(playwright, provisioned_asterisk):
    pin = spki_pin(certs.certs_dir(provisioned_asterisk.settings) / "asterisk.crt")
    chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        "--allow-loopback-in-peer-connection", f"--ignore-certificate-errors-spki-list={pin}"])
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def console_web(provisioned_asterisk, tmp_path_factory):
    """The web app under gunicorn over the test Asterisk's own state folder (its database, AMI
    and certificates), with a governor's-office account."""
    p = provisioned_asterisk
    with p.db.write() as session:
        _user, password = users.create_user(session, "console_video", Role.GOVERNOR_OFFICE, "Governor's office")
    port = free_port()
    env = {**as_environ(p.settings), "TAWASUL_DEMO": "1", "TAWASUL_WEB_PORT": str(port)}
    log_path = tmp_path_factory.mktemp("console-web") / "gunicorn.log"
    with open(log_path, "ab") as log:
        process = tawasul(["web", "serve", "--workers", "1"], env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", process)
    yield {"url": url, "password": password, "log": log_path}
    stop(process)


@pytest.fixture(scope="module")
def call_watch(provisioned_asterisk, tmp_path_factory):
    """`tawasul call watch` over the test Asterisk: call records and the console's live state."""
    log_path = tmp_path_factory.mktemp("call-watch") / "watch.log"
    env = {**as_environ(provisioned_asterisk.settings), "TAWASUL_DEMO": "1"}
    with open(log_path, "ab") as log:
        process = tawasul(["call", "watch"], env, stdout=log, stderr=subprocess.STDOUT)
    yield log_path
    stop(process)


@pytest.fixture
def checked_in_at_badr(provisioned_asterisk):
    db = provisioned_asterisk.db
    with db.write() as session:
        centre = session.scalars(sa.select(Centre).where(Centre.code == "BDR")).one()
        citizen = Citizen(national_id=make_national_id("1", "67676767"), name=CITIZEN, mobile="+966554445555")
        appointment = Appointment(
            reference=references.new_reference("appointment"), checkin_code="2468", citizen=citizen,
            kind=AppointmentKind.VIDEO, centre=centre, slot_minutes=15, status=AppointmentStatus.CHECKED_IN,
            seat=96, slot_start=dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1))
        session.add(appointment)
        session.flush()
        ids = appointment.id, citizen.id
    yield appointment.id
    with db.write() as session:
        session.execute(sa.delete(Call).where(Call.appointment_id == ids[0]))
        session.execute(sa.delete(Appointment).where(Appointment.id == ids[0]))
        session.execute(sa.delete(Citizen).where(Citizen.id == ids[1]))


def video_stats(page) -> dict:
    """What the page's peer connection says: inbound video frames decoded, outbound frames
    encoded, and the transport's DTLS state and SRTP cipher."""
    return page.evaluate("""async () => {
        const pc = window.tawasulVideo.connection();
        if (!pc) { return null; }
        const out = {decoded: 0, encoded: 0, dtls: "", srtp: "", remoteSdp: pc.remoteDescription.sdp};
        (await pc.getStats()).forEach(r => {
            if (r.type === "inbound-rtp" && r.kind === "video") { out.decoded += r.framesDecoded || 0; }
            if (r.type === "outbound-rtp" && r.kind === "video") { out.encoded += r.framesEncoded || 0; }
            if (r.type === "transport") { out.dtls = r.dtlsState; out.srtp = r.srtpCipher || ""; }
        });
        return out;
    }""")


def wait_state(page, state: str, timeout_ms: int) -> None:
    page.locator(f"#video[data-state={state}]").wait_for(state="attached", timeout=timeout_ms)


def test_the_governor_takes_a_session_in_the_console_page(provisioned_asterisk, console_web, media_browser,
                                                        phones, call_watch, checked_in_at_badr):
    p = provisioned_asterisk
    bdr = phones.start(BDR)
    context = media_browser.new_context(locale="ar-SA", permissions=["camera", "microphone"])
    page = context.new_page()
    said: list[str] = []
    page.on("console", lambda m: said.append(f"{m.type}: {m.text}"))
    try:
        page.goto(console_web["url"] + "/login")
        page.locator("#username").fill("console_video")
        page.locator("#password").fill(console_web["password"])
        page.locator("main form button[type=submit]").click()
        page.wait_for_url(console_web["url"] + "/")
        page.goto(console_web["url"] + "/console/")
        assert page.get_by_role("heading", name="الفيديو في هذه الصفحة").is_visible()

        # Switching the video on: credentials for this page, never shown on it.
        with page.expect_response(lambda r: r.url.endswith("/console/video")) as issued:
            page.get_by_role("button", name="استقبال الجلسات في هذه الصفحة").click()
        given = json.loads(issued.value.body())
        assert given["ws"] == console_endpoint.ws_url(p.settings) and len(given["password"]) >= 24
        wait_state(page, "ready", 15000)
        assert page.locator("#video-status").inner_text() == "جاهز: ترنّ الجلسات في هذه الصفحة."
        assert given["password"] not in page.content()
        # Asterisk holds only the digest of that password.
        _ok, [stored] = ami_call(p.settings, _ami_login(p), [
            {"Action": "DBGet", "Family": console_endpoint.ASTDB_FAMILY, "Key": console_endpoint.ENDPOINT}])
        digest = _db_value(stored)
        assert given["password"] not in digest and "password_digest" in digest

        # Connect next rings this page (the page's video is on); the page stays (no reload). The
        # page's own hang-up button declines the first ring: the centre is never rung.
        page.evaluate("window.__not_reloaded = true")
        declined = time.monotonic()
        page.get_by_role("button", name="توصيل الجلسة التالية").click()
        wait_state(page, "incoming", 15000)
        page.get_by_role("button", name="إنهاء المكالمة").click()
        wait_state(page, "ready", 10000)
        time.sleep(2)
        assert not bdr.find_events("CALL_INCOMING", since=declined), "a declined session rang the centre"
        since, mark = time.monotonic(), bdr.log_mark()
        page.get_by_role("button", name="توصيل الجلسة التالية").click()
        wait_state(page, "incoming", 15000)
        assert CITIZEN in page.locator("#video-status").inner_text()
        page.get_by_role("button", name="رد").click()

        # Asterisk now rings the centre, which answers.
        bdr.wait_event("CALL_INCOMING", 20, since=since)
        # The page has been sending video since it answered: its first pictures are gone by the time
        # the centre answers, which then needs a keyframe asked for through Asterisk.
        time.sleep(3)
        bdr.accept()
        wait_state(page, "in_call", 15000)
        assert page.evaluate("window.__not_reloaded") is True
        assert page.locator("#remote-video").is_visible()

        # Video decodes on both sides.
        bdr.wait_video(timeout=20, since=mark)
        stats = wait_for(lambda: (s := video_stats(page)) and s["decoded"] > 25 and s["encoded"] > 25 and s,
                         20, "video frames decoded and encoded in the page")
        print(f"page: {stats['decoded']} frames decoded, {stats['encoded']} encoded; dtls {stats['dtls']}, "
              f"srtp {stats['srtp']}; phone decodes {bdr.video_received(mark)}")
        assert stats["dtls"] == "connected" and stats["srtp"], stats
        assert "UDP/TLS/RTP/SAVPF" in stats["remoteSdp"] and "a=fingerprint:" in stats["remoteSdp"]
        assert "VP8/90000" in stats["remoteSdp"]

        # The console shows the session live, and its "end" hangs up both sides (the page stays).
        item = page.locator(f"#session-{checked_in_at_badr}")
        page.locator(f"#session-{checked_in_at_badr}[data-phase=in_session]").wait_for(timeout=10000)
        closed_since = time.monotonic()
        item.get_by_role("button", name=f"إنهاء الجلسة مع {CITIZEN}").click()
        bdr.wait_event("CALL_CLOSED", 10, since=closed_since)
        wait_state(page, "ready", 10000)
        assert page.evaluate("window.__not_reloaded") is True
        assert page.locator("#console-message").inner_text() == "جارٍ إنهاء الجلسة."

        # One call record, answered and ended; the appointment is completed.
        def recorded():
            with p.db.read() as session:
                rows = session.scalars(sa.select(Call).where(Call.appointment_id == checked_in_at_badr)).all()
                status = session.get(Appointment, checked_in_at_badr).status
                return (rows, status) if rows and rows[0].end_at and status is AppointmentStatus.COMPLETED else None
        rows, _status = wait_for(recorded, 10, "the call recorded and the appointment completed")
        assert len(rows) == 1 and rows[0].decision == "connect" and rows[0].answer_at is not None

        # Switching the video off deletes the digest: nothing can register as the console.
        page.get_by_role("button", name="إيقاف الفيديو في هذه الصفحة").click()
        wait_state(page, "off", 5000)
        wait_for(lambda: _db_value(ami_call(p.settings, _ami_login(p), [
            {"Action": "DBGet", "Family": console_endpoint.ASTDB_FAMILY,
             "Key": console_endpoint.ENDPOINT}])[1][0]) == "", 5, "the console's digest deleted")
    except Exception:
        print(f"--- page: state {page.locator('#video').get_attribute('data-state')!r}, "
              f"status {page.locator('#video-status').inner_text()!r}\n" + "\n".join(said[-30:]))
        print("--- call watch:\n" + call_watch.read_text()[-2000:])
        print("--- web log:\n" + console_web["log"].read_text()[-3000:])
        print("--- Asterisk:\n" + p.runtime.log_tail(80))
        raise
    finally:
        context.close()


def _ami_login(p):
    from tawasul import ami

    return ami.login(p.settings, "web")  # DBGet: AMI class reporting


def _db_value(reply) -> str:
    """The value of a DBGet reply (a list of events ending with DBGetComplete), '' if none."""
    events = reply if isinstance(reply, list) else [reply]
    return next((e.get("Val", "") for e in events if e.get("Event") == "DBGetResponse"), "")

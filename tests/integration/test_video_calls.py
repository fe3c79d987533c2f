"""Real video calls: real Asterisk, real baresip phones, the real FastAGI server.

A citizen's appointment is booked for now at the Badr centre (BDR); BDR's phone dials 100,
route_call decides, the governor's desk (auto-answer) picks up; both phones decode VP8 and
audio flows, over TLS signalling and SRTP media. Around that live call: what must fail does
(plain RTP, an unknown device, other numbers, a third caller), and `provision apply` leaves
the call up. Phones are stopped by their fixtures, also when a test fails.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import re
import time

import pytest
import sqlalchemy as sa

from tawasul import booking, scheduling
from tawasul.models import Appointment, AppointmentKind, AppointmentStatus, Device, GovernorSchedule
from tests.live import wait_for
from tests.phones import PhoneError

pytestmark = pytest.mark.integration

GOVERNOR = "governor-desk-1"
BDR = "centre-bdr-1"
YNB = "centre-ynb-1"
MIN_SLOT_LEFT = 180  # seconds: the route ends the session with its slot; the module needs ~1 min


# --------------------------------------------------------------------------- helpers


def ami(p, *actions, timeout: float = 10) -> list:
    """tawasul.ami.run_actions on its own thread and loop."""
    from tawasul.ami import run_actions

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run_actions(p.settings, p.runtime.ami_login("web"), list(actions), timeout)).result()


def as_list(response) -> list:
    return response if isinstance(response, list) else [response]


def channels(p) -> list[str]:
    events = as_list(ami(p, {"Action": "CoreShowChannels"})[0])
    return sorted(e["Channel"] for e in events if e.get("Event") == "CoreShowChannel")


def bridges(p) -> dict[str, list[str]]:
    """{bridge id: [channel, ...]} from AMI BridgeList and BridgeInfo."""
    listed = as_list(ami(p, {"Action": "BridgeList"})[0])
    ids = [e["BridgeUniqueid"] for e in listed if e.get("Event") == "BridgeListItem"]
    out = {}
    for bridge_id in ids:
        info = as_list(ami(p, {"Action": "BridgeInfo", "BridgeUniqueid": bridge_id})[0])
        out[bridge_id] = sorted(e["Channel"] for e in info if e.get("Event") == "BridgeInfoChannel")
    return out


def getvar(p, channel: str, variable: str) -> str:
    response = ami(p, {"Action": "Getvar", "Channel": channel, "Variable": variable})[0]
    return str(as_list(response)[0].get("Value", ""))


def channel_of(p, endpoint: str) -> str:
    found = [c for c in channels(p) if c.startswith(f"PJSIP/{endpoint}-")]
    assert len(found) == 1, (endpoint, channels(p))
    return found[0]


def channelstats(p) -> dict[str, tuple[int, int]]:
    """`pjsip show channelstats` (audio only): {channel id as shown, cut to 18 characters:
    (receive count, transmit count)}. A row of Asterisk 22:
    ` 35561410 centre-bdr-1-00000 00:00:10 ulaw   513   0   0   0.002    513   0   0   0.002   0.000`"""
    out = {}
    for line in p.runtime.cli("pjsip show channelstats").splitlines():
        fields = line.split()
        if len(fields) >= 12 and re.match(r"\d+:\d\d:\d\d$", fields[2]) and fields[4].isdigit():
            out[fields[1]] = (int(fields[4]), int(fields[8]))
    return out


def status_efps(phone) -> tuple[float, float] | None:
    """(sent, decoded) video frames per second from the phone's last status line
    `[0:00:07] audio=64000/64000 video=..../.... (bit/s) efps=25.0/25.0`."""
    found = re.findall(r"efps=([\d.]+)/([\d.]+)", phone.log_text())
    return (float(found[-1][0]), float(found[-1][1])) if found else None




def assert_never_rang(governor, since: float) -> None:
    assert not governor.incoming_calls(since), governor.incoming_calls(since)


def call_fails(phone, number: str, timeout: float = 10) -> str:
    """Dial and wait for CALL_CLOSED without CALL_ESTABLISHED; returns the close reason."""
    since = time.monotonic()
    phone.dial(number)
    closed = phone.wait_event("CALL_CLOSED", timeout, since=since)
    assert not phone.find_events("CALL_ESTABLISHED", since), f"{number} was answered"
    return str(closed.get("param", ""))


# --------------------------------------------------------------------------- fixtures


def _pick_slots(plan: GovernorSchedule, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(BDR's slot, YNB's slot), both due now under the route's windows (10 min early, 15 late)
    with 10-minute slots back to back: BDR gets the running slot while enough of it is left, YNB
    the next one (it starts within 10 minutes); near a slot's end they swap places."""
    length = dt.timedelta(minutes=plan.slot_minutes)
    running = scheduling.video_slot_at(plan, now)
    if running is None:
        raise AssertionError(f"no running slot at {now}")
    if (running + length - now).total_seconds() >= MIN_SLOT_LEFT:
        return running, running + length
    return running + length, running


@pytest.fixture(scope="module")
def appointments(provisioned_asterisk, agi_server):
    """Every day 00:00-23:59 in 10-minute slots back to back; BDR and YNB both booked in slots due
    now (see _pick_slots). The schedule is restored and the bookings cancelled afterwards."""
    p = provisioned_asterisk
    now = dt.datetime.now(dt.timezone.utc)
    with p.db.write() as session:
        row = session.scalars(sa.select(GovernorSchedule)).one()
        saved = {name: getattr(row, name) for name in
                 ("session_days", "video_start", "video_end", "slot_minutes", "buffer_minutes", "timezone")}
        row.session_days, row.video_start, row.video_end = "0,1,2,3,4,5,6", dt.time(0, 0), dt.time(23, 59)
        row.slot_minutes, row.buffer_minutes = 10, 0
        if now.astimezone(scheduling.zone(row)).time() >= dt.time(23, 40):
            # the day's last slots cannot reach past local midnight: decide this run in UTC's day
            row.timezone = "UTC"
        session.flush()
        bdr_slot, ynb_slot = _pick_slots(booking.schedule(session), now)
        citizen = booking.find_or_register_citizen(session, "1123456780", "Test Citizen", "+966501234567")
        ids = {"slot": bdr_slot}
        for code, slot in (("BDR", bdr_slot), ("YNB", ynb_slot)):
            ids[code] = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO, at=slot,
                                     centre=booking.centre_by_code(session, code), actor="test", now=now).id
    try:
        yield ids
    finally:
        with p.db.write() as session:
            for key in ("BDR", "YNB"):
                appointment = session.get(Appointment, ids[key])
                if appointment.status in booking.ACTIVE:
                    appointment.status = AppointmentStatus.CANCELLED
            row = session.scalars(sa.select(GovernorSchedule)).one()
            for name, value in saved.items():
                setattr(row, name, value)


@pytest.fixture(scope="module")
def governor(module_phones, appointments):
    return module_phones.start(GOVERNOR)


@pytest.fixture(scope="module")
def bdr_phone(module_phones, appointments):
    return module_phones.start(BDR)


@pytest.fixture(scope="module")
def live_call(provisioned_asterisk, bdr_phone, governor, agi_server, appointments):
    """BDR's phone in a session with the governor's desk, up for the rest of the module."""
    bdr = bdr_phone
    since = time.monotonic()
    marks = {bdr.name: bdr.log_mark(), governor.name: governor.log_mark()}
    bdr.dial("100")
    try:
        established = bdr.wait_event("CALL_ESTABLISHED", 15, since=since)
        incoming = governor.wait_event("CALL_ESTABLISHED", 15, since=since,
                                       where=lambda e: e.get("direction") == "incoming")
    except PhoneError as exc:
        raise AssertionError(f"{exc}\n--- AGI server:\n{agi_server.log_text()[-2000:]}\n--- Asterisk:\n"
                             f"{provisioned_asterisk.runtime.log_tail(60)}") from None
    try:
        yield {"bdr": bdr, "governor": governor, "since": since, "marks": marks,
               "incoming": incoming, "established": established, "setup_seconds": time.monotonic() - since}
    finally:
        bdr.hangup()


# --------------------------------------------------------------------------- tests


def test_unprovisioned_device_cannot_register(phones, provisioned_asterisk):
    folder = phones.copy(phones.export(BDR), "made-up", port_offset=7,
                         accounts=lambda text: text.replace(f"sip:{BDR}@", "sip:centre-xyz-9@"))
    stranger = phones.start(folder, register=False)
    outcome = stranger.wait_registration(15)
    assert outcome["type"] == "REGISTER_FAIL", outcome
    assert stranger.registration() == "ERR"
    security = provisioned_asterisk.runtime.log_dir / "security"
    wait_for(lambda: "centre-xyz-9" in security.read_text(errors="replace"), 5, "security log names the stranger")


def test_plain_rtp_phone_is_refused(phones, provisioned_asterisk, governor, agi_server, appointments):
    """BDR's own credentials, appointment due, but the phone offers RTP/AVP: Asterisk answers 488
    before the dialplan runs (no AGI decision), nothing is bridged, the desk never rings."""
    folder = phones.copy(phones.export(BDR), "plain-rtp", port_offset=7,
                         accounts=lambda text: re.sub(r";mediaenc=[^;\s]+", "", text))
    assert "mediaenc" not in (folder / "accounts").read_text()
    plain = phones.start(folder)
    decisions = len(agi_server.decisions())
    since = time.monotonic()
    reason = call_fails(plain, "100")
    assert reason.startswith("488"), reason
    # the phone itself offered no encryption (with mediaenc it logs "Using media encryption 'srtp-mand'")
    assert "Using media encryption" not in plain.log_text() and "SRTP is Enabled" not in plain.log_text()
    assert agi_server.decisions()[decisions:] == []
    assert bridges(provisioned_asterisk) == {}
    time.sleep(1)
    assert_never_rang(governor, since)


@pytest.mark.parametrize("number", ["200", YNB, GOVERNOR, "0501234567"])
def test_centre_cannot_dial_other_numbers(number, bdr_phone, governor, agi_server, appointments):
    bdr = bdr_phone
    decisions = len(agi_server.decisions())
    since = time.monotonic()
    reason = call_fails(bdr, number)
    assert reason.startswith(("403", "404")), reason
    assert agi_server.decisions()[decisions:] == []  # refused by the dialplan, before any route
    assert_never_rang(governor, since)


def test_video_call_tls_srtp_both_ways(live_call, provisioned_asterisk, agi_server, appointments):
    p = provisioned_asterisk
    bdr, governor = live_call["bdr"], live_call["governor"]
    # The route: route_call said connect, for BDR's appointment.
    decision = wait_for(lambda: [d for d in agi_server.decisions() if f"appointment={appointments['BDR']}" in d],
                        5, "route_call decision")
    assert "-> connect ok" in decision[-1] and BDR in decision[-1], decision
    assert "sip:100@" in live_call["established"]["peeruri"] and ";transport=tls" in live_call["established"]["peeruri"]

    # Video: both phones decode VP8 (baresip -v: "video: receiving with resolution 352 x 288").
    for phone in (bdr, governor):
        assert phone.wait_video(20, since=live_call["marks"][phone.name]) == (352, 288), phone.name
    assert "Set video decoder: VP8" in bdr.log_text() and "Set video decoder: VP8" in governor.log_text()
    wait_for(lambda: (status_efps(bdr) or (0, 0))[1] > 0 and (status_efps(governor) or (0, 0))[1] > 0, 10,
             "decoded frames per second on both phones")

    # SRTP from the phones: both streams keyed by SDES, AES_CM_128_HMAC_SHA1_80.
    for phone in (bdr, governor):
        menc = {e["param"].split(",")[1] for e in phone.find_events("CALL_MENC", live_call["since"])}
        assert menc == {"audio", "video"}, (phone.name, menc)
        assert "srtp: audio: SRTP is Enabled" in phone.log_text() and "srtp: video: SRTP is Enabled" in phone.log_text()
        assert "{0/TLS/v4} 200 OK" in phone.log_text()  # registered over TLS

    # From Asterisk: both legs TLS signalling and SRTP audio and video.
    legs = {name: channel_of(p, name) for name in (BDR, GOVERNOR)}
    for endpoint, channel in legs.items():
        assert getvar(p, channel, "CHANNEL(pjsip,secure)") == "1", (channel, "TLS")
        assert getvar(p, channel, "CHANNEL(rtp,secure,audio)") == "1", (channel, "SRTP audio")
        assert getvar(p, channel, "CHANNEL(rtp,secure,video)") == "1", (channel, "SRTP video")

    # Audio flows both ways on both legs: Asterisk's RTP counters climb.
    first = channelstats(p)
    time.sleep(2)
    second = channelstats(p)
    for endpoint, channel in legs.items():
        key = channel.removeprefix("PJSIP/")[:18]
        assert key in first and key in second, (key, second)
        assert second[key][0] > first[key][0] > 0, (key, "audio received by Asterisk", first, second)
        assert second[key][1] > first[key][1] > 0, (key, "audio sent by Asterisk", first, second)
    # ... and video too (RTCP of the video stream, read on each leg).
    for channel in legs.values():
        report = getvar(p, channel, "CHANNEL(rtcp,all,video)")
        assert re.search(r"rxcount=[1-9]", report) and re.search(r"txcount=[1-9]", report), (channel, report)
    # ... and the phones hear it: audio bit/s received, from their status lines.
    for phone in (bdr, governor):
        assert phone.audio_received() > 0, (phone.name, phone.status())
    print(f"session set up in {live_call['setup_seconds']:.2f} s; audio counters {second}")


def test_third_device_cannot_join(live_call, phones, provisioned_asterisk, agi_server, appointments):
    """YNB's appointment is due too, so route_call lets it through; the desk is in BDR's session.
    The third call waits in the private line (test_call_flow covers the line itself): for 20 s it
    never reaches the desk and never enters the session's bridge; then the phone hangs up."""
    p = provisioned_asterisk
    governor = live_call["governor"]
    ynb = phones.start(YNB)
    decisions = len(agi_server.decisions())
    since = time.monotonic()
    ynb.dial("100")
    seen = []
    while not ynb.find_events("CALL_CLOSED", since):
        found = bridges(p)
        seen.append(found)
        assert len(found) == 1 and len(next(iter(found.values()))) == 2, found
        assert not any(YNB in c for members in found.values() for c in members), found
        if time.monotonic() - since > 20 and not ynb.find_events("CALL_CLOSED", since):
            # past the spoken "please wait" (both languages), waiting in the line, alone
            assert YNB in p.runtime.cli("queue show governor")
            ynb.hangup()
            wait_for(lambda: ynb.find_events("CALL_CLOSED", since), 5, "the hang-up")
        assert time.monotonic() - since < 40, "the third call never ended"
        time.sleep(0.3)
    closed = ynb.wait_event("CALL_CLOSED", 1, since=since)
    decision = agi_server.decisions()[decisions:]
    print(f"third caller: route_call {decision}; call ended: {closed.get('param')}; {len(seen)} bridge checks")
    assert decision and f"appointment={appointments['YNB']}" in decision[-1], decision
    assert_never_rang(governor, since)
    assert not governor.find_events("CALL_CLOSED", live_call["since"])
    (members,) = bridges(p).values()
    assert [m.rsplit("-", 1)[0] for m in members] == [f"PJSIP/{BDR}", f"PJSIP/{GOVERNOR}"], members
    assert len(channels(p)) == 2, channels(p)


def test_provision_apply_during_live_call(live_call, provisioned_asterisk):
    p = provisioned_asterisk
    bdr, governor = live_call["bdr"], live_call["governor"]
    assert "centre-ynb-1" in p.runtime.cli(f"pjsip show endpoint {YNB}")

    def set_ynb(enabled: bool) -> None:
        with p.db.write() as session:
            session.scalars(sa.select(Device).where(Device.sip_user == YNB)).one().enabled = enabled

    set_ynb(False)
    try:
        before = channelstats(p)
        mark = {ph.name: ph.log_mark() for ph in (bdr, governor)}
        result = p.apply("test")
        assert result.ok, result.errors
        assert any("pjsip" in str(a).lower() for a in p.sent[-1]), p.sent[-1]
        # The change is live: YNB's endpoint is gone.
        out = p.runtime.cli(f"pjsip show endpoint {YNB}")
        assert "Unable to find object" in out or YNB not in out, out
        time.sleep(3)
        # The call survived: no CALL_CLOSED on either phone, still the same two channels bridged,
        # and media still flowing after the reload.
        for phone in (bdr, governor):
            assert not phone.find_events("CALL_CLOSED", live_call["since"]), phone.name
        (members,) = bridges(p).values()
        assert [m.rsplit("-", 1)[0] for m in members] == [f"PJSIP/{BDR}", f"PJSIP/{GOVERNOR}"]
        after = channelstats(p)
        for key, (received, sent) in after.items():
            assert received > before[key][0] and sent > before[key][1], (key, before, after)
        for phone in (bdr, governor):
            assert re.search(r"efps=[\d.]+/[1-9]", phone.log_since(mark[phone.name])), phone.name
    finally:
        set_ynb(True)
        assert p.apply("test").ok
    assert "Unable to find object" not in p.runtime.cli(f"pjsip show endpoint {YNB}")

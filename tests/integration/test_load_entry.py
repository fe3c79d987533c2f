"""The load-test entry (benchmarks only) is gated by settings.load_test: off, there is no plain UDP
transport at all (nothing answers SIPp's INVITE from 127.0.0.2); on, the `static` extension answers."""
from __future__ import annotations

import dataclasses
import socket
import uuid
from pathlib import Path

import pytest

from provisioning import render
from provisioning import runtime as asterisk_runtime
from provisioning.validate import validate
from tawasul.settings import Settings
from tests.asterisk_fixture import assert_stopped_clean, make_settings
from tests.live import free_port
from tests.unit.test_render_rows import AMI_SECRETS

pytestmark = pytest.mark.integration

LOAD_ADDRESS = "127.0.0.2"


def _message(lines: list[str], body: str = "") -> bytes:
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body.encode())}\r\n\r\n" + body).encode()


def _responses(sock: socket.socket, timeout: float):
    sock.settimeout(timeout)
    while True:
        data, _ = sock.recvfrom(65535)
        first = data.split(b"\r\n", 1)[0].decode(errors="replace")
        if first.startswith("SIP/2.0 "):
            yield int(first.split()[1]), data.decode(errors="replace")


def invite(port: int, exten: str, timeout: float = 5) -> int:
    """An INVITE without any REGISTER, from 127.0.0.2 over UDP; the final status. A 200 is
    acknowledged and hung up at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOAD_ADDRESS, 0))
        local = f"{LOAD_ADDRESS}:{sock.getsockname()[1]}"
        call_id, tag, uri = uuid.uuid4().hex, uuid.uuid4().hex[:8], f"sip:{exten}@127.0.0.1:{port}"
        sdp = (f"v=0\r\no=probe 1 1 IN IP4 {LOAD_ADDRESS}\r\ns=-\r\nc=IN IP4 {LOAD_ADDRESS}\r\nt=0 0\r\n"
               f"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

        def head(method: str, cseq: int, to: str = "") -> list[str]:
            return [f"{method} {uri} SIP/2.0",
                    f"Via: SIP/2.0/UDP {local};rport;branch=z9hG4bK{uuid.uuid4().hex[:16]}",
                    "Max-Forwards: 70", f"From: <sip:probe@{LOAD_ADDRESS}>;tag={tag}",
                    f"To: <sip:{exten}@127.0.0.1>{to}", f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
                    f"Contact: <sip:probe@{local}>"]

        sock.sendto(_message(head("INVITE", 1) + ["Content-Type: application/sdp"], sdp), ("127.0.0.1", port))
        for status, text in _responses(sock, timeout):
            if status >= 200:
                break
        to_tag = next((line.split(";tag=", 1)[1].strip() for line in text.split("\r\n")
                       if line.lower().startswith(("to:", "t:")) and ";tag=" in line), "")
        to = f";tag={to_tag}" if to_tag else ""
        if status >= 300:
            sock.sendto(_message(head("ACK", 1, to)), ("127.0.0.1", port))  # (a new branch: good enough here)
            return status
        sock.sendto(_message(head("ACK", 1, to)), ("127.0.0.1", port))
        sock.sendto(_message(head("BYE", 2, to)), ("127.0.0.1", port))
        for bye_status, _text in _responses(sock, timeout):
            if bye_status >= 200:
                break
        return status


def test_gate_off_is_never_rendered_and_validation_refuses_the_anonymous_endpoint():
    off = dataclasses.replace(Settings(), state_dir=Path("/x"))
    assert off.load_test is False
    files = render.render_base(off, AMI_SECRETS)
    assert "load-test" not in files["pjsip.conf"] + files["extensions.conf"]
    on = render.render_base(dataclasses.replace(off, load_test=True), AMI_SECRETS)
    assert validate(on, load_test=True) == []
    assert any("no auth (anonymous" in e for e in validate(on))  # the exception holds only with the gate


def test_load_entry_off_has_no_plain_sip_to_answer_127_0_0_2(asterisk):
    assert asterisk.settings.load_test is False
    assert " udp " not in asterisk.cli("pjsip show transports")
    with pytest.raises(OSError):  # socket.timeout: no answer at all
        invite(asterisk.settings.sip_udp_port, "static", timeout=2)


def test_load_entry_on_answers_static(tmp_path):
    settings = make_settings(tmp_path / "state", load_test=True, ami_port=free_port(), sip_udp_port=free_port(),
                             sip_tls_port=free_port(), agi_port=free_port(), rtp_start=31000, rtp_end=31999)
    rt = asterisk_runtime.ensure_installed(settings)
    rt.start(timeout=60)
    try:
        assert " udp " in rt.cli("pjsip show transports")
        assert invite(settings.sip_udp_port, "static") == 200
        assert invite(settings.sip_udp_port, "nothing-here") >= 400  # only the load-test extensions
    finally:
        rt.stop()
        assert_stopped_clean(rt)
        rt.destroy()

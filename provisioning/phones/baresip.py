"""The baresip profile: a complete folder `baresip -f FOLDER` runs as it is.

    config        modules, TLS CA, fake camera, test tone, SIP and ctrl_tcp listen ports
    accounts      <sip:USER@HOST:PORT;transport=tls>;auth_pass=...;mediaenc=srtp-mand;...  (0600)
    ca.pem        the deployment CA (<state_dir>/certs/ca.crt), to verify Asterisk's certificate
    tone-8k.wav   the microphone: a tone (8 kHz mono; the ausine module only does 48 kHz)
    profile.json  ports and identity (no secret), so tests and tools find the ctrl_tcp port

Ports are picked per device, deterministically: a block of 10 ports per device (SIP on the
first, TLS on the next, ctrl_tcp on the fifth), offset by the state folder so two state
folders on one machine rarely meet. The block range stays clear of Asterisk's RTP range.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from provisioning.phones import PhoneProfile, ProfileError, environment
from provisioning.writer import write_atomic
from tawasul.settings import Settings

PORT_BASE = 21000          # above the default RTP range (10000-20000) and below the ephemeral range
PORT_BLOCKS = 1100         # 21000 .. 31999
PORT_BLOCK = 10            # baresip's TLS listens on sip port + 1: keep phones >= 10 apart
CTRL_OFFSET = 5
RTP_PORTS = "40000-49998"  # the phones' own RTP ports, clear of Asterisk's and of the SIP blocks
MODULE_PATH = "/usr/lib/baresip/modules"
TONE_NAME = "tone-8k.wav"
CA_NAME = "ca.pem"
CA_SOURCE = ("certs", "ca.crt")
TONE_SECONDS = 60


def ca_source(settings: Settings) -> Path:
    return Path(settings.state_dir).joinpath(*CA_SOURCE)


def ports(settings: Settings, profile: PhoneProfile) -> dict[str, int]:
    """The device's SIP, TLS and ctrl_tcp ports: deterministic for (state folder, device)."""
    offset = int(hashlib.sha256(os.path.abspath(settings.state_dir).encode()).hexdigest()[:8], 16)
    block = (profile.device_id + offset) % PORT_BLOCKS
    sip = PORT_BASE + PORT_BLOCK * block
    return {"sip_port": sip, "tls_port": sip + 1, "ctrl_port": sip + CTRL_OFFSET}


def account_line(profile: PhoneProfile) -> str:
    """The accounts line: TLS to Asterisk, mandatory SRTP, auto-answer only for the governor's desk."""
    params = [
        f"auth_pass={profile.password}",
        "regint=60",
        "mediaenc=srtp-mand",
        f"answermode={'auto' if profile.auto_answer else 'manual'}",
        # G.711 only: baresip 1.0 has no resampler, and its aufile source refuses a file whose rate
        # and channels differ from the codec's ("input file must have sample-rate 48000 Hz"), which
        # ends the call. The 8 kHz mono tone therefore fits PCMU/PCMA and nothing else.
        "audio_codecs=PCMU/8000/1,PCMA/8000/1",
        "video_codecs=VP8,H264",
    ]
    for name, value in (("sip_user", profile.sip_user), ("password", profile.password)):
        if any(c in value for c in ";<>\"\r\n ") or not value:
            raise ProfileError(f"{name} of {profile.sip_user!r} cannot go in a baresip accounts line")
    uri = f"<sip:{profile.sip_user}@{profile.server_host}:{profile.server_port};transport=tls>"
    return f'"{profile.display_name}" {uri};' + ";".join(params)


def render(settings: Settings, profile: PhoneProfile, folder: Path, dump_audio: bool = False) -> dict[str, str]:
    """config and accounts as text (a pure function of its inputs)."""
    folder = Path(folder).resolve()
    p = ports(settings, profile)
    listen_host = "127.0.0.1" if profile.server_host.startswith("127.") or profile.server_host == "localhost" else "0.0.0.0"
    config = environment().get_template("baresip/config.j2").render(
        p=profile, folder=str(folder), sip_listen=f"{listen_host}:{p['sip_port']}",
        ctrl_listen=f"127.0.0.1:{p['ctrl_port']}", module_path=MODULE_PATH, rtp_ports=RTP_PORTS,
        tone=str(folder / TONE_NAME), cafile=str(folder / CA_NAME), dump_audio=dump_audio,
    )
    accounts = environment().get_template("baresip/accounts.j2").render(p=profile, line=account_line(profile))
    return {"config": config, "accounts": accounts}


def make_tone(path: Path, frequency: int) -> None:
    """A 16-bit 8 kHz mono sine, made with sox."""
    if path.is_file() and path.stat().st_size > 44:
        return
    sox = shutil.which("sox")
    if not sox:
        raise ProfileError("sox is not installed (apt-get install sox); it makes the test tone", field="sox")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.wav")
    subprocess.run([sox, "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp),
                    "synth", str(TONE_SECONDS), "sine", str(frequency), "vol", "0.5"],
                   check=True, capture_output=True, timeout=30)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_folder(settings: Settings, profile: PhoneProfile, folder: Path, dump_audio: bool = False) -> list[Path]:
    """Write the ready-to-run folder; returns the paths written or checked. `dump_audio`: the phone
    writes what it sends and hears to WAV files in the folder (tests only: it is a recording)."""
    ca = ca_source(settings)
    if not ca.is_file():
        raise ProfileError(
            f"no deployment CA at {ca}: make the certificates first (`tawasul provision apply`); "
            "a baresip phone cannot verify Asterisk's TLS certificate without it", field="ca")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    files = render(settings, profile, folder, dump_audio)
    written = []
    write_atomic(folder / "config", files["config"], 0o600)
    write_atomic(folder / "accounts", files["accounts"], 0o600)
    write_atomic(folder / CA_NAME, ca.read_text(encoding="utf-8"), 0o644)
    written += [folder / "config", folder / "accounts", folder / CA_NAME]
    # A different pitch per device, so a test can tell who it hears.
    make_tone(folder / TONE_NAME, 400 + 40 * (profile.device_id % 16))
    written.append(folder / TONE_NAME)
    info = {
        "sip_user": profile.sip_user, "kind": profile.kind, "mac": profile.mac,
        "server": f"{profile.server_host}:{profile.server_port}", "transport": "tls",
        "mediaenc": "srtp-mand", "dump_audio": dump_audio, "answermode": "auto" if profile.auto_answer else "manual",
        **ports(settings, profile),
    }
    write_atomic(folder / "profile.json", json.dumps(info, indent=2, sort_keys=True) + "\n", 0o600)
    written.append(folder / "profile.json")
    return written

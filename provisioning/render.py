"""Render the Asterisk configuration: a pure function of settings and rows, filename -> text.

Templates live in the asterisk_conf package (Jinja2, StrictUndefined). `render_all` adds the
database's devices and centres (provisioning.rows, loaded elsewhere); `render_base` is the
same with no devices. Nothing here touches the disk except reading the templates (and, for the
console's ICE on a loopback-only setup, the kernel's list of local addresses).
provisioning.validate checks the output; provisioning.apply writes it and reloads Asterisk.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2

from provisioning import console_endpoint
from provisioning.rows import CENTRE_PHONE, GOVERNOR_DESK, REALM, Rows
from tawasul import ami
from tawasul.asterisk_modules import FORBIDDEN_MODULES
from tawasul.validation import display_text

BASE_FILES = (
    "asterisk.conf", "modules.conf", "logger.conf", "manager.conf", "pjsip.conf",
    "extensions.conf", "rtp.conf", "cdr.conf", "cel.conf", "musiconhold.conf",
    "indications.conf", "features.conf", "ccss.conf", "acl.conf", "udptl.conf", "pjproject.conf", "stasis.conf",
    "queues.conf", "http.conf", "sorcery.conf",
)
PRIVATE_FILES = frozenset({"manager.conf", "extensions.conf"})  # written with mode 0600: they hold secrets
# Certificate and key for the TLS transport, looked for in <state_dir>/certs.
TLS_CERT_NAME = "asterisk.crt"
TLS_KEY_NAME = "asterisk.key"


def instance_id(state_dir: os.PathLike | str) -> str:
    """Short, stable identity of the Asterisk instance that belongs to a state folder."""
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Layout:
    """Where things are, as Asterisk sees them (inside its root filesystem, if any)."""

    instance_dir: str
    moddir: str = "/usr/lib/x86_64-linux-gnu/asterisk/modules"
    datadir: str = "/usr/share/asterisk"
    agidir: str = "/usr/share/asterisk/agi-bin"
    tls_cert: str | None = None
    tls_key: str | None = None


def default_layout(settings) -> Layout:
    """The layout of the packaged Asterisk in the cached root filesystem, without TLS."""
    return Layout(instance_dir=str(PurePosixPath("/srv/tawasul") / instance_id(settings.state_dir)))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("asterisk_conf", "."),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _check_value(name: str, value: str) -> str:
    if not value or any(c in value for c in "\r\n;[]") or value != value.strip():
        raise ValueError(f"{name} must be non-empty, on one line, without ; [ ] or surrounding spaces")
    return value


class RenderError(ValueError):
    """The rows cannot be rendered (bad names, bad networks); nothing is written."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


# The dialplan's numbers and prompts (prompt files are installed by provisioning.prompts).
GOVERNOR_NUMBER = "100"
ECHO_NUMBER = "*43"
PROMPT_WAIT = "tawasul/please-wait"
PROMPT_GOODBYE = "tawasul/goodbye"
PROMPT_UNAVAILABLE = "service-unavailable"  # no decision, or a reason without its own prompt
# route_call's deny reasons (agi.variables) that have a prompt of their own: tawasul/<reason, - for _>
# (governor_unavailable: the dialplan's own, when a waiting caller's slot ends before its turn)
DENY_REASONS = ("unknown_device", "outside_hours", "no_appointment", "too_early", "too_late", "bad_code",
                "wrong_centre", "governor_unavailable", "code_locked")
RING_SECONDS = 30
# The waiting line (queues.conf) and its dialplan contexts.
QUEUE_NAME = "governor"
LINE_CONTEXT = "tawasul-line"
MEMBER_CONTEXT = "tawasul-line-member"
DENY_CONTEXT = "tawasul-deny"
MOH_CLASS = "tawasul"
MOH_FOLDER = "moh"                  # <instance_dir>/moh: made at set-up (provisioning.prompts.generate_music)
MESSAGE_FOLDER = "spool/messages"   # <instance_dir>/spool/messages: citizens' recorded messages
ANNOUNCE_SECONDS = 30
# QUEUE_PRIO = QUEUE_PRIO_BASE - (slot end, Unix seconds): an earlier slot is served first; stays
# positive (a 32-bit int) until 2033.
QUEUE_PRIO_BASE = 2_000_000_000
# app_queue's prompts, overridden by Tawasul's own (played in the caller's channel language).
QUEUE_PROMPTS = (
    ("queue-youarenext", "tawasul/you-are-next"),      # position 1
    ("queue-thereare", "tawasul/you-are-number"),      # "you are number" N
    ("queue-callswaiting", "tawasul/in-the-line"),     # "in the line"
    ("queue-quantity1", "tawasul/more-than"),          # beyond the limit: "there are more than" 9
    ("queue-quantity2", "tawasul/callers-ahead"),      # "callers ahead of you"
    ("queue-thankyou", "tawasul/please-stay"),         # after every position announcement
)
# The session: the slot limit's warning, a backstop after it, the shortest session (route_call's floor).
WARNING_SECONDS = 60
LIMIT_GRACE_SECONDS = 5
MIN_SESSION_SECONDS = 60
PROMPT_SESSION_ENDING = "tawasul/session-ending"
# Refusal and message: how long the offer waits for 1, the message's length, the whole refusal's bound.
OFFER_SECONDS = 5
MESSAGE_MAX_SECONDS = 120
MESSAGE_SILENCE_SECONDS = 15
DENY_DEADLINE_SECONDS = 60 + MESSAGE_MAX_SECONDS
# route_call's decision comes within this, or the caller hears the refusal (a hung AGI server holds nobody);
# route_call extends it while the caller keys a booking code (agi.variables.ANSWER_SECONDS: the same number).
AGI_DEADLINE_SECONDS = 3
DECIDE_CONTEXT = "tawasul-decide"
UNIDENTIFIED_LIMITS = {"count": 5, "period": 10, "prune": 30}
# Benchmarks only (settings.load_test, off by default): SIPp's endpoint, address and context.
LOAD_ENDPOINT = "load"
LOAD_ADDRESS = "127.0.0.2"
LOAD_CONTEXT = "load-test"
LOAD_PERPROC_DEADLINE = 120  # the process-per-call baseline takes seconds a call under load: not cut at 3 s
SIP_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
LANGUAGE = re.compile(r"^[a-z]{2}(_[A-Z]{2})?$")


_text = display_text  # free text (labels, names) made safe for a comment or a quoted caller ID name


def _devices_context(rows: Rows) -> tuple[dict, list[str]]:
    errors: list[str] = []
    centres = {}
    for c in rows.centres:
        if not c.active:
            continue
        nets = []
        for net in c.networks:
            try:
                nets.append(str(ipaddress.ip_network(net, strict=False)))
            except ValueError:
                errors.append(f"centre {c.code}: allowed network {net!r} is not an address or CIDR")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", c.code):
            errors.append(f"centre {c.code!r}: code must be letters, digits, - or _")
        language = c.prompt_language if LANGUAGE.match(c.prompt_language or "") else "ar"
        centres[c.code] = {"code": c.code, "slug": c.code.lower(), "name": _text(c.name_en),
                           "networks": nets, "language": language, "devices": []}
    desks = []
    for d in rows.devices:
        if not d.enabled or d.kind not in (CENTRE_PHONE, GOVERNOR_DESK):
            continue  # disabled devices and staff devices have no endpoint
        if not SIP_USER.match(d.sip_user):
            errors.append(f"device {d.sip_user!r}: SIP user must be 1-40 letters, digits, . _ -, "
                          "starting with a letter or digit")
            continue
        if not re.fullmatch(r"[0-9a-f]{32}", d.password_md5 or ""):
            errors.append(f"device {d.sip_user}: no usable password digest")
            continue
        entry = {"name": d.sip_user, "label": _text(d.label or d.sip_user),
                 "callerid": _text(d.label or d.sip_user), "md5": d.password_md5}
        if d.kind == GOVERNOR_DESK:
            desks.append(entry)
        elif d.centre_code in centres:
            centres[d.centre_code]["devices"].append(entry)
        # a centre phone of an inactive (or missing) centre has no endpoint
    listed = [c for c in centres.values() if c["devices"]]
    return {
        "centres": listed,
        "governor_desks": desks,
        "devices_any": bool(desks or listed),
    }, errors


def _console_context(settings, layout: Layout, devices: dict) -> dict | None:
    """The governor's console endpoint (WebRTC), once phones are provisioned over TLS, unless
    turned off (webrtc_port = 0)."""
    if not (console_endpoint.enabled(settings) and layout.tls_cert and devices["devices_any"]):
        return None
    return {"name": console_endpoint.ENDPOINT, "bind": f"{console_endpoint.host(settings)}:{settings.webrtc_port}",
            "callerid": "Governor's console"}


def _loopback_ice_addresses(settings) -> list[str]:
    """With Asterisk on loopback only, this machine's other IPv4 addresses: Asterisk offers its
    ICE host candidates on those (never on loopback), and rtp.conf maps them to 127.0.0.1."""
    try:
        if not ipaddress.ip_address(settings.sip_host).is_loopback:
            return []
    except ValueError:
        return []
    return sorted(a for a in _interface_addresses() if not ipaddress.ip_address(a).is_loopback)


def _interface_addresses() -> set[str]:
    """Every local IPv4 address, from the kernel's routing table of local addresses."""
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        return set()
    found = set()
    for before, line in zip(lines, lines[1:]):
        if "/32 host LOCAL" in line:
            found.add(before.split()[-1])
    return found


def _ami_users(settings, ami_secrets: dict[str, str]) -> list[dict]:
    """manager.conf's users (tawasul.ami.USERS), each with its own secret: {user: secret}."""
    if set(ami_secrets) != set(ami.USERS):
        raise ValueError(f"AMI secrets needed for exactly: {', '.join(sorted(ami.USERS))}")
    return [{"name": _check_value("ami_user", ami.username(settings, user)),
             "secret": _check_value(f"the AMI secret of {user}", ami_secrets[user]), **rights}
            for user, rights in ami.USERS.items()]


def _desk_networks(settings) -> tuple[list[str], list[str]]:
    """settings.desk_networks ("10.0.0.0/24, 127.0.0.1") -> (networks, errors)."""
    nets, errors = [], []
    for net in (n.strip() for n in settings.desk_networks.split(",")):
        if not net:
            continue
        try:
            nets.append(str(ipaddress.ip_network(net, strict=False)))
        except ValueError:
            errors.append(f"desk_networks: {net!r} is not an address or CIDR")
    return nets, errors


def render_base(settings, ami_secrets: dict[str, str], layout: Layout | None = None, *,
                agi_secret: str = "") -> dict[str, str]:
    """Every config file without any device: filename -> text."""
    return render_all(settings, Rows(), ami_secrets, layout, agi_secret=agi_secret)


def render_all(settings, rows: Rows, ami_secrets: dict[str, str], layout: Layout | None = None, *,
               agi_secret: str = "") -> dict[str, str]:
    """Every config file, rendered from `settings`, the database `rows` and `layout`: filename -> text.
    `ami_secrets`: each AMI user's secret ({"web": ..., "watch": ..., "provision": ...}).
    `agi_secret` (tawasul.settings.agi_secret) goes into extensions.conf for the FastAGI server; without
    it the server refuses every request, and so every call to the governor is refused.

    Raises RenderError (every problem found, not just the first) when the rows cannot be rendered.
    """
    if not settings.rtp_start < settings.rtp_end:
        raise ValueError("rtp_start must be below rtp_end")
    layout = layout or default_layout(settings)
    devices, errors = _devices_context(rows)
    desk_networks, desk_errors = _desk_networks(settings)
    errors += desk_errors
    if devices["devices_any"] and not layout.tls_cert:
        errors.append("devices need the TLS transport, and there is no certificate: run `tawasul certs status`")
    if errors:
        raise RenderError(errors)
    console = _console_context(settings, layout, devices)
    endpoints = [d["name"] for d in devices["governor_desks"]] + ([console["name"]] if console else [])
    agi_host = "127.0.0.1" if settings.agi_host in ("0.0.0.0", "", "::") else settings.agi_host
    context = {
        **devices,
        "desk_networks": desk_networks,
        "console": console,
        "console_astdb_prefix": console_endpoint.ASTDB_PREFIX,
        "ice_loopback": _loopback_ice_addresses(settings) if console else [],
        "governor_endpoints": endpoints,
        "governor_dial": "&".join(f"PJSIP/{name}" for name in endpoints),
        "realm": REALM,
        "limits": UNIDENTIFIED_LIMITS,
        "governor_language": "ar",
        "governor_number": GOVERNOR_NUMBER,
        "echo_number": ECHO_NUMBER,
        "prompt_wait": PROMPT_WAIT,
        "prompt_goodbye": PROMPT_GOODBYE,
        "prompt_unavailable": PROMPT_UNAVAILABLE,
        "prompt_leave_message": "tawasul/leave-message",
        "prompt_record_after_tone": "tawasul/record-after-tone",
        "prompt_message_saved": "tawasul/message-saved",
        "prompt_session_ending": PROMPT_SESSION_ENDING,
        "queue_name": QUEUE_NAME,
        "line_context": LINE_CONTEXT,
        "member_context": MEMBER_CONTEXT,
        "deny_context": DENY_CONTEXT,
        "moh_class": MOH_CLASS,
        "moh_dir": f"{layout.instance_dir}/{MOH_FOLDER}",
        "message_dir": f"{layout.instance_dir}/{MESSAGE_FOLDER}",
        "announce_seconds": ANNOUNCE_SECONDS,
        "queue_prio_base": QUEUE_PRIO_BASE,
        "queue_prompts": QUEUE_PROMPTS,
        "warning_seconds": WARNING_SECONDS,
        "limit_grace_seconds": LIMIT_GRACE_SECONDS,
        "min_session_seconds": MIN_SESSION_SECONDS,
        "offer_seconds": OFFER_SECONDS,
        "message_max_seconds": MESSAGE_MAX_SECONDS,
        "message_silence_seconds": MESSAGE_SILENCE_SECONDS,
        "deny_deadline": DENY_DEADLINE_SECONDS,
        "deny_reasons": DENY_REASONS,
        "ring_seconds": RING_SECONDS,
        "governor_caller_name": "تواصل - مكتب سمو أمير المنطقة",
        "agi_deadline": AGI_DEADLINE_SECONDS,
        "agi_secret": _check_value("agi_secret", agi_secret) if agi_secret else "",
        "decide_context": DECIDE_CONTEXT,
        "agi_address": f"{agi_host}:{settings.agi_port}",
        "s": settings,
        "ami_users": _ami_users(settings, ami_secrets),
        "layout": layout,
        "instance_id": instance_id(settings.state_dir),
        "forbidden_modules": FORBIDDEN_MODULES,
        "tls_names": f"{TLS_CERT_NAME}, {TLS_KEY_NAME}",
        "load_endpoint": LOAD_ENDPOINT,
        "load_address": LOAD_ADDRESS,
        "load_context": LOAD_CONTEXT,
        "load_perproc_deadline": LOAD_PERPROC_DEADLINE,
    }
    env = _environment()
    return {name: env.get_template(name + ".j2").render(context) for name in BASE_FILES}

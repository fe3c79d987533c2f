"""The centre status board's rules: every device's registration as Asterisk reports it, and the
alert for a centre whose phone is not registered with a session coming up.

`read_registrations(settings, sip_users)` asks AMI (PJSIPShowEndpoints,
PJSIPShowContacts, PJSIPShowEndpoint per device) and returns one `Registration` per device;
`alerts(registrations, appointments, now)` is a pure function of what it is given, so the rule
is tested without Asterisk. `test_call_action(sip_user)` is the AMI Originate that rings a
device into the echo test (tawasul-internal,echo,1).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from tawasul import ami

ALERT_WINDOW = dt.timedelta(minutes=30)
ECHO = ("tawasul-internal", "echo", "1")
REACHABLE = {"reachable", "nonqualified", "avail", "created", "updated"}


@dataclass(frozen=True)
class Registration:
    sip_user: str
    registered: bool = False
    status: str = "Unavailable"      # the contact's status (Reachable, Unreachable, ...) or Unavailable
    roundtrip_ms: float | None = None
    user_agent: str = ""
    contact_uri: str = ""
    via_tls: bool = False            # the contact registered over TLS
    expires_at: dt.datetime | None = None
    codecs: tuple[str, ...] = ()     # the endpoint's `allow`
    transport: str = ""
    media_encryption: str = ""       # sdes, dtls or no
    device_state: str = ""
    active_channels: int = 0


@dataclass(frozen=True)
class Upcoming:
    """A video session to come: what the alert rule needs of an appointment."""

    reference: str
    centre_code: str
    slot_start: dt.datetime
    sip_users: tuple[str, ...] = ()  # the centre's enabled phones


@dataclass(frozen=True)
class Alert:
    centre_code: str
    reference: str
    slot_start: dt.datetime
    minutes_left: int
    sip_users: tuple[str, ...] = field(default_factory=tuple)


def alerts(registrations: dict[str, Registration], upcoming: Iterable[Upcoming], now: dt.datetime,
           window: dt.timedelta = ALERT_WINDOW) -> list[Alert]:
    """One alert per session starting within `window` of `now` (or started, not yet ended) whose
    centre has no registered phone. Sorted by start time."""
    out = []
    for item in upcoming:
        if not (now - dt.timedelta(minutes=1) <= item.slot_start <= now + window):
            continue
        if any(registrations.get(u, Registration(u)).registered for u in item.sip_users):
            continue
        minutes = max(0, int((item.slot_start - now).total_seconds() // 60))
        out.append(Alert(item.centre_code, item.reference, item.slot_start, minutes, tuple(item.sip_users)))
    return sorted(out, key=lambda a: (a.slot_start, a.centre_code))


def _events(reply, name: str) -> list:
    items = reply if isinstance(reply, list) else [reply]
    return [e for e in items if e.get("Event") == name]


def _codecs(allow: str) -> tuple[str, ...]:
    return tuple(c for c in allow.strip("()").replace(",", "|").split("|") if c and c != "!all")


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse(sip_users: Iterable[str], endpoints_reply, contacts_reply, details: dict[str, object],
          now: dt.datetime | None = None) -> dict[str, Registration]:
    """AMI answers -> {sip_user: Registration}; a device Asterisk does not know is unregistered."""
    now = now or dt.datetime.now(dt.timezone.utc)
    endpoints = {e.get("ObjectName"): e for e in _events(endpoints_reply, "EndpointList")}
    contacts = {}
    for c in _events(contacts_reply, "ContactList"):
        contacts.setdefault(c.get("Endpoint") or c.get("Aor"), c)
    out = {}
    for user in sip_users:
        endpoint, contact = endpoints.get(user, {}), contacts.get(user)
        detail = next(iter(_events(details.get(user) or [], "EndpointDetail")), {})
        status = str(contact.get("Status", "")) if contact else "Unavailable"
        usec = _float(contact.get("RoundtripUsec")) if contact else None
        expire = _float(contact.get("RegExpire")) if contact else None
        uri = str(contact.get("Uri", "")) if contact else ""
        out[user] = Registration(
            sip_user=user,
            registered=bool(contact) and status.lower() in REACHABLE,
            status=status or "Unknown",
            roundtrip_ms=round(usec / 1000, 1) if usec else None,
            user_agent=str(contact.get("UserAgent", "")) if contact else "",
            contact_uri=uri,
            via_tls="transport=tls" in uri.lower() or uri.lower().startswith("sips:"),
            expires_at=dt.datetime.fromtimestamp(expire, dt.timezone.utc) if expire else None,
            codecs=_codecs(str(detail.get("Allow", ""))),
            transport=str(detail.get("Transport", endpoint.get("Transport", ""))),
            media_encryption=str(detail.get("MediaEncryption", "")),
            device_state=str(endpoint.get("DeviceState", "")),
            active_channels=int(_float(endpoint.get("ActiveChannels")) or 0),
        )
    return out


def read_registrations(settings, sip_users: list[str], timeout: float = 5) -> dict[str, Registration]:
    """Ask Asterisk now (PJSIPShow* are AMI class `system`: the provision user). Raises
    ami.AmiUnavailable when AMI cannot be reached."""
    actions = [{"Action": "PJSIPShowEndpoints"}, {"Action": "PJSIPShowContacts"}]
    actions += [{"Action": "PJSIPShowEndpoint", "Endpoint": u} for u in sip_users]
    replies = ami.run_actions_blocking(settings, ami.login(settings, "provision"), actions, timeout)
    details = dict(zip(sip_users, replies[2:]))
    return parse(sip_users, replies[0], replies[1], details)


def test_call_action(sip_user: str) -> dict:
    """AMI Originate: ring the device; when it answers, it hears and sees itself (echo test)."""
    context, exten, priority = ECHO
    return {"Action": "Originate", "Channel": f"PJSIP/{sip_user}", "Context": context, "Exten": exten,
            "Priority": priority, "CallerID": '"Tawasul test call" <echo>', "Timeout": "30000", "Async": "true"}


def place_test_call(settings, sip_user: str, timeout: float = 10) -> tuple[bool, str]:
    """(queued, message). Async Originate: success means Asterisk accepted the call to ring."""
    [reply] = ami.run_actions_blocking(settings, ami.login(settings, "web"), [test_call_action(sip_user)], timeout)
    first = reply[0] if isinstance(reply, list) else reply
    return ami.succeeded(reply), str(first.get("Message", ""))


def health(settings, timeout: float = 5) -> dict:
    """Asterisk's version, start time and current calls (AMI CoreSettings and CoreStatus)."""
    settings_reply, status_reply = ami.run_actions_blocking(
        settings, ami.login(settings, "web"), [{"Action": "CoreSettings"}, {"Action": "CoreStatus"}], timeout)
    first = lambda r: r[0] if isinstance(r, list) else r  # noqa: E731
    s, c = first(settings_reply), first(status_reply)
    started = None
    date, time_ = c.get("CoreStartupDate"), c.get("CoreStartupTime")
    if date and time_:
        try:
            started = dt.datetime.fromisoformat(f"{date} {time_}")
        except ValueError:
            started = None
    return {"version": str(s.get("AsteriskVersion", "")), "started": started,
            "reloaded": f"{c.get('CoreReloadDate', '')} {c.get('CoreReloadTime', '')}".strip(),
            "current_calls": int(_float(c.get("CoreCurrentCalls")) or 0),
            "max_calls": str(s.get("CoreMaxCalls", ""))}

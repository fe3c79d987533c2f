"""The centre status board (staff and IT): every device's registration (status, round-trip time,
user agent, TLS contact, expiry, last seen), codecs and TLS/SRTP state as Asterisk reports them;
an alert for each centre with a session in the next 30 minutes and no registered phone; and a
one-click test call (echo) to a device. When AMI cannot be reached the page says so. SMS messages
that failed for good (tawasul.sms) are counted, the latest few shown with their reason. The page
also says whether Asterisk has loaded a module that could spy on or record sessions
(tawasul.asterisk_modules), and lists the latest changes of the governor's desk's address
(tawasul.desk_contact).

"Last seen" is now for a registered device, else when the call watcher last saw it registered
(tawasul.livestate keeps it across Asterisk restarts; every web process reads the same row).
/board/status.json is what the page polls every 2 seconds.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload

from tawasul import ami, asterisk_modules, audit, board as rules, desk_contact, livestate, outbox
from tawasul.models import Appointment, AppointmentKind, AppointmentStatus, Device, DeviceKind, Role, utcnow
from web import db_of, settings_of
from web.auth import roles_required

bp = Blueprint("board", __name__, url_prefix="/board")
VIEWERS = (Role.STAFF, Role.IT_ADMIN)
PENDING = (AppointmentStatus.BOOKED, AppointmentStatus.CHECKED_IN, AppointmentStatus.WAITING)


class TestCallForm(FlaskForm):
    """The test call button (CSRF only)."""


def _modules_check(settings) -> tuple[list[str] | None, str | None]:
    """(the forbidden modules loaded, None), or (None, why the check could not be made)."""
    try:
        return asterisk_modules.loaded_forbidden(settings), None
    except (ami.AmiUnavailable, OSError) as exc:
        return None, str(exc) or type(exc).__name__


def _snapshot() -> dict:
    app = current_app._get_current_object()
    now = utcnow()
    with db_of(app).read() as session:
        devices = session.scalars(sa.select(Device).options(selectinload(Device.centre))
                                  .order_by(Device.kind, Device.sip_user)).all()
        rows = [dict(sip_user=d.sip_user, kind=d.kind.value, label=d.label, enabled=d.enabled,
                     centre=d.centre.code if d.centre else "",
                     centre_name=(d.centre.name_en if d.centre else "")) for d in devices]
        phones: dict[int, list[str]] = {}
        for d in devices:
            if d.kind is DeviceKind.CENTRE_PHONE and d.enabled and d.centre_id:
                phones.setdefault(d.centre_id, []).append(d.sip_user)
        appointments = session.scalars(
            sa.select(Appointment).options(selectinload(Appointment.centre))
            .where(Appointment.kind == AppointmentKind.VIDEO, Appointment.status.in_(PENDING),
                   Appointment.centre_id.is_not(None),
                   Appointment.slot_start >= now - dt.timedelta(minutes=1),
                   Appointment.slot_start <= now + rules.ALERT_WINDOW)).all()
        upcoming = [rules.Upcoming(a.reference, a.centre.code, a.slot_start, tuple(phones.get(a.centre_id, ())))
                    for a in appointments]
        seen = livestate.load(session)[1].get("seen", {})
        sms_failed, sms_latest = outbox.failures(session)
        sms_latest = [dict(to=masked(m.to), reason=m.last_error, at=m.failed_at, attempts=m.attempts)
                      for m in sms_latest]
        desk_changes = desk_contact.latest_changes(session)
    registrations, ami_error = {}, None
    try:
        registrations = rules.read_registrations(settings_of(app), [r["sip_user"] for r in rows])
    except (ami.AmiUnavailable, OSError) as exc:
        ami_error = str(exc) or type(exc).__name__
    for row in rows:
        reg = registrations.get(row["sip_user"])
        row["reg"] = reg
        earlier = seen.get(row["sip_user"])
        row["last_seen"] = now if reg and reg.registered else (dt.datetime.fromisoformat(earlier) if earlier else None)
    alerts = rules.alerts(registrations, upcoming, now) if not ami_error else [
        rules.Alert(u.centre_code, u.reference, u.slot_start, max(0, int((u.slot_start - now).total_seconds() // 60)),
                    u.sip_users) for u in upcoming]
    return {"rows": rows, "alerts": alerts, "ami_error": ami_error, "now": now,
            "sms_failed": sms_failed, "sms_latest": sms_latest, "desk_changes": desk_changes}


def masked(mobile: str) -> str:
    """+966551234567 -> +9665•••••567: enough for IT to tell messages apart, no more."""
    return mobile[:5] + "•" * max(0, len(mobile) - 8) + mobile[-3:]


@bp.get("/")
@roles_required(*VIEWERS)
def index():
    forbidden_loaded, modules_error = _modules_check(settings_of(current_app))
    return render_template("board/index.html", form=TestCallForm(), forbidden_loaded=forbidden_loaded,
                           modules_error=modules_error, **_snapshot())


@bp.get("/status.json")
@roles_required(*VIEWERS)
def status():
    snap = _snapshot()

    def iso(value):
        return value.isoformat() if value else None

    return jsonify({
        "ami_error": snap["ami_error"],
        "devices": {r["sip_user"]: {
            "registered": bool(r["reg"] and r["reg"].registered),
            "status": r["reg"].status if r["reg"] else "",
            "roundtrip_ms": r["reg"].roundtrip_ms if r["reg"] else None,
            "user_agent": r["reg"].user_agent if r["reg"] else "",
            "via_tls": bool(r["reg"] and r["reg"].via_tls),
            "last_seen": iso(r["last_seen"]),
        } for r in snap["rows"]},
        "alerts": [{"centre": a.centre_code, "reference": a.reference, "slot_start": iso(a.slot_start),
                    "minutes_left": a.minutes_left} for a in snap["alerts"]],
    })


@bp.post("/test-call/<sip_user>")
@roles_required(*VIEWERS)
def test_call(sip_user: str):
    if not TestCallForm().validate_on_submit():
        abort(400)
    app = current_app._get_current_object()
    with db_of(app).read() as session:
        device = session.scalar(sa.select(Device).where(Device.sip_user == sip_user))
        if device is None or not device.enabled:
            abort(404)
    try:
        ok, message = rules.place_test_call(settings_of(app), sip_user)
    except (ami.AmiUnavailable, OSError) as exc:
        ok, message = False, str(exc)
    with db_of(app).write() as session:
        audit.record(session, current_user.username, "board.test_call",
                     session.scalar(sa.select(Device).where(Device.sip_user == sip_user)), ok=ok)
    if ok:
        flash(_l("Test call to %(device)s placed: answer it on the phone; you should hear and see yourself.",
                 device=sip_user), "success")
    else:
        flash(_l("The test call to %(device)s could not be placed: %(reason)s", device=sip_user, reason=message),
              "error")
    return redirect(url_for(".index"))

"""The governor's console: the day's video sessions in order, their live state pushed by
server-sent events, and the actions: connect next, end the session, no-show, directive.

Live state. Asterisk's events are seen by one process only, the call watcher (`tawasul call
watch`), which holds the shared AMI connection: it keeps the registrations and channels and
writes a compact snapshot to the `live_state` table (tawasul.livestate) within ~0.1 s of an
event. Appointment statuses and call records are written to the same database by the watcher,
the desk and this console. A console's stream (`/console/stream`) polls both every
POLL_SECONDS (the snapshot, the schedule, the day's sessions, their phones and calls: a few
indexed queries) and sends an event only when the page's view changed, so
no web process needs its own AMI connection and any gunicorn worker can serve any console.

Streams are long requests: gunicorn runs gthread workers (web/cli.py: `--threads`), and each
worker process serves at most CONSOLE_MAX_STREAMS streams at once (others get 503, and the
page opens its stream again a few seconds later: an EventSource gives up on a 503 by itself); a
stream ends after CONSOLE_STREAM_SECONDS and the browser reconnects, so threads are never held
for ever.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from provisioning import console_endpoint
from tawasul import ami, audit, booking, governor_calls, livestate, scheduling
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Call,
    Device,
    DeviceKind,
    Role,
    Ticket,
)
from tawasul.validation import InvalidInput
from web import CSP, db_of, metrics, settings_of
from web.auth import roles_required
from web.forms import ActionForm

bp = Blueprint("console", __name__, url_prefix="/console")

POLL_SECONDS = 0.25
DEFAULTS = {"CONSOLE_MAX_STREAMS": int(os.environ.get("TAWASUL_CONSOLE_MAX_STREAMS", "4")), "CONSOLE_STREAM_SECONDS": 300, "CONSOLE_POLL_SECONDS": POLL_SECONDS}
_streams_lock = threading.Lock()  # guards each app's count of open streams (app.extensions)

PHASES = {"booked": "booked", "checked_in": "checked_in", "waiting": "waiting", "in_session": "in_session",
          "completed": "done", "no_show": "no_show", "failed": "failed", "cancelled": "cancelled"}



def config(name: str):
    return current_app.config.get(name, DEFAULTS[name])


def send_actions(settings, actions: list[dict], user: str = "web") -> list:
    """AMI actions from a request (log in, send, log out; on a thread of its own), as the web's
    AMI user, or as `user` (tawasul.ami.USERS)."""
    return ami.run_actions_blocking(settings, ami.login(settings, user), actions, timeout=5)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _day_and_zone(session):
    zone = scheduling.zone(booking.schedule(session))
    return dt.datetime.now(zone).date(), zone


def day_sessions(session, day: dt.date) -> list[Appointment]:
    """The day's video sessions in order (cancelled ones left out)."""
    return [a for a in booking.on_day(session, day)
            if a.kind is AppointmentKind.VIDEO and a.status is not AppointmentStatus.CANCELLED]


def _centre_phones(session, centre_ids) -> dict[int, list[str]]:
    phones: dict[int, list[str]] = {}
    if centre_ids:
        for device in session.scalars(sa.select(Device).where(
                Device.centre_id.in_(centre_ids), Device.kind == DeviceKind.CENTRE_PHONE, Device.enabled)):
            phones.setdefault(device.centre_id, []).append(device.sip_user)
    return phones


def live_view(session, day: dt.date) -> dict:
    """What the page shows live: per session its status, centre phone registration, call state."""
    _version, snapshot = livestate.load(session)
    registered = set(snapshot.get("registered", []))
    appointments = day_sessions(session, day)
    phones = _centre_phones(session, {a.centre_id for a in appointments if a.centre_id})
    ids = [a.id for a in appointments]
    calls = {}
    if ids:
        for call in session.scalars(sa.select(Call).where(Call.appointment_id.in_(ids)).order_by(Call.id)):
            calls[call.appointment_id] = call  # the latest call of each appointment
    rows = []
    for a in appointments:
        call = calls.get(a.id)
        open_call = call is not None and call.end_at is None
        rows.append({
            "id": a.id, "status": a.status.value, "phase": PHASES[a.status.value],
            "registered": any(p in registered for p in phones.get(a.centre_id, [])),
            "ringing": bool(open_call and call.answer_at is None),
            "since": call.answer_at.isoformat() if open_call and call.answer_at else None,
        })
    return {"ami": bool(snapshot.get("ami")), "sessions": rows}


def history(session, appointment: Appointment) -> tuple[list[Appointment], list[Ticket]]:
    """The citizen's earlier sessions and their tickets (the latest few)."""
    earlier = list(session.scalars(sa.select(Appointment).where(
        Appointment.citizen_id == appointment.citizen_id, Appointment.id != appointment.id,
        Appointment.slot_start < appointment.slot_start).order_by(Appointment.slot_start.desc()).limit(5)))
    own = sa.select(Appointment.id).where(Appointment.citizen_id == appointment.citizen_id)
    found = list(session.scalars(sa.select(Ticket).where(sa.or_(
        Ticket.citizen_id == appointment.citizen_id, Ticket.appointment_id.in_(own)))
        .order_by(Ticket.created_at.desc()).limit(5)))
    return earlier, found


@bp.get("/")
@roles_required(Role.GOVERNOR_OFFICE)
def index():
    with db_of(current_app).read() as session:
        day, zone = _day_and_zone(session)
        view = {row["id"]: row for row in live_view(session, day)["sessions"]}
        rows = []
        for a in day_sessions(session, day):
            earlier, found = history(session, a)
            rows.append({"a": a, "at": a.slot_start.astimezone(zone), "citizen": a.citizen.name,
                         "centre": a.centre, "live": view[a.id],
                         "earlier": [(e.slot_start.astimezone(zone), e.reference, e.status.value, e.subject)
                                     for e in earlier],
                         "tickets": [(t.id, t.reference, t.kind.value, t.status.value, t.subject) for t in found]})
    settings = settings_of(current_app)
    video = console_endpoint.enabled(settings)
    response = make_response(render_template("console/index.html", day=day, rows=rows, form=ActionForm(),
                                             video=video))
    if video:  # the page's video endpoint: camera and microphone, and Asterisk's secure websocket only
        response.headers["Content-Security-Policy"] = (
            f"{CSP}; connect-src 'self' {console_endpoint.ws_url(settings)}")
        response.headers["Permissions-Policy"] = "geolocation=(), microphone=(self), camera=(self)"
    return response


@bp.get("/state")
@roles_required(Role.GOVERNOR_OFFICE)
def state():
    with db_of(current_app).read() as session:
        day, _zone = _day_and_zone(session)
        return jsonify({**live_view(session, day), "now": now_utc().isoformat()})


def _open_streams(app) -> dict:
    return app.extensions.setdefault("tawasul.console_streams", {"open": 0})


@bp.get("/stream")
@roles_required(Role.GOVERNOR_OFFICE)
def stream():
    """Server-sent events: `state` with the live view whenever it changes (and at the start)."""
    streams = _open_streams(current_app)
    with _streams_lock:
        if streams["open"] >= config("CONSOLE_MAX_STREAMS"):
            return Response("retry: 3000\n\n", status=503, mimetype="text/event-stream",
                            headers={"Retry-After": "3"})
        streams["open"] += 1
        metrics.STREAMS.inc()

    def release():
        with _streams_lock:
            streams["open"] -= 1
            metrics.STREAMS.dec()
    db = db_of(current_app)
    poll, lifetime = config("CONSOLE_POLL_SECONDS"), config("CONSOLE_STREAM_SECONDS")

    def events():
        yield "retry: 1000\n\n"
        last, last_sent, ends = None, time.monotonic(), time.monotonic() + lifetime
        while time.monotonic() < ends:
            with db.read() as session:
                day, _zone = _day_and_zone(session)
                view = live_view(session, day)
            if view != last:
                last, last_sent = view, time.monotonic()
                yield f"event: state\ndata: {json.dumps({**view, 'now': now_utc().isoformat()})}\n\n"
            elif time.monotonic() - last_sent > 15:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"  # also tells the server when the browser has gone
            time.sleep(poll)

    response = Response(events(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(release)
    return response


def _wants_json() -> bool:
    """The console page sends its actions with fetch() while its video is on (a page load would
    end the call): it asks for JSON."""
    return request.accept_mimetypes.best == "application/json"


def _done(message: str, ok: bool = True):
    if _wants_json():
        return jsonify(ok=ok, message=message), (200 if ok else 409)
    flash(message, "success" if ok else "error")
    return redirect(url_for("console.index")), 303


def _refuse(message: str):
    return _done(message, ok=False)


def _checked_form():
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)


@bp.post("/next")
@roles_required(Role.GOVERNOR_OFFICE)
def connect_next():
    _checked_form()
    settings = settings_of(current_app)
    try:
        with db_of(current_app).read() as session:
            # "console": the page that asks has its video on, and takes the session itself.
            ring = console_endpoint.ENDPOINT if request.form.get("ring") == "console" else None
            call = governor_calls.next_call(session, now_utc(), settings.early_minutes, settings.late_minutes, ring)
    except InvalidInput as error:
        if error.field == "appointment":
            return _refuse(_("No checked-in session is due now: nothing to connect."))
        if error.field == "governor":
            return _refuse(_("The governor is in a session; end it first."))
        return _refuse(_("The call cannot be placed: %(why)s", why=error.message))
    try:
        [reply] = send_actions(settings, [governor_calls.originate_action(call)])
    except ami.AmiUnavailable:
        return _refuse(_("Asterisk cannot be reached; the call was not placed."))
    if not ami.succeeded(reply):
        return _refuse(_("Asterisk refused the call: %(why)s", why=reply.get("Message", "")))
    with db_of(current_app).write() as session:
        governor_calls.record_request(session, call, current_user.username)
    return _done(_("Ringing the governor's endpoint, then %(name)s (%(reference)s).",
                   name=call.citizen_name, reference=call.reference))


def session_channels(session, appointment: Appointment, live_channels: dict) -> list[str]:
    """The channels of the appointment's session: from its open call record, else the live
    channels of its centre's phones."""
    call = session.scalars(sa.select(Call).where(Call.appointment_id == appointment.id, Call.end_at.is_(None))
                           .order_by(Call.id.desc())).first()
    found = [c for c in ((call.channel, call.peer_channel) if call else ()) if c]
    if not found and appointment.centre_id:
        phones = set(_centre_phones(session, {appointment.centre_id}).get(appointment.centre_id, []))
        found = [name for name, c in live_channels.items() if c.get("endpoint") in phones]
    return found


@bp.post("/<int:appointment_id>/end")
@roles_required(Role.GOVERNOR_OFFICE)
def end(appointment_id: int):
    _checked_form()
    settings = settings_of(current_app)
    with db_of(current_app).read() as session:
        appointment = session.get(Appointment, appointment_id)
        if appointment is None:
            abort(404)
        _version, snapshot = livestate.load(session)
        channels = session_channels(session, appointment, snapshot.get("channels", {}))
        if not channels and appointment.status is AppointmentStatus.IN_SESSION:
            try:  # no record and no live view of its channels: ask Asterisk
                reply = send_actions(settings, [{"Action": "CoreShowChannels"}])[0]
            except ami.AmiUnavailable:
                return _refuse(_("Asterisk cannot be reached; the session was not ended."))
            events = reply if isinstance(reply, list) else [reply]
            live = {e.get("Channel"): {"endpoint": livestate.endpoint_of_channel(e.get("Channel", ""))}
                    for e in events if e.get("Event") == "CoreShowChannel"}
            channels = session_channels(session, appointment, live)
    if not channels:
        return _refuse(_("This session has no call under way to end."))
    try:
        replies = send_actions(settings, [{"Action": "Hangup", "Channel": c, "Cause": "16"} for c in channels])
    except ami.AmiUnavailable:
        return _refuse(_("Asterisk cannot be reached; the session was not ended."))
    if not any(ami.succeeded(r) for r in replies):
        return _refuse(_("The call had already ended."))
    return _done(_("The session is being ended."))


@bp.post("/<int:appointment_id>/no-show")
@roles_required(Role.GOVERNOR_OFFICE)
def no_show(appointment_id: int):
    _checked_form()
    try:
        with db_of(current_app).write() as session:
            appointment = session.get(Appointment, appointment_id)
            if appointment is None:
                abort(404)
            booking.mark_no_show(session, appointment, current_user.username, now_utc())
    except InvalidInput as error:
        if error.field == "at":
            return _refuse(_("This session is not due yet; it cannot be marked a no-show."))
        return _refuse(_("Only a session still waiting (not in session or ended) can be marked a no-show."))
    return _done(_("Marked as a no-show."))


@bp.post("/video")
@roles_required(Role.GOVERNOR_OFFICE)
def video_on():
    """Switch this page's video endpoint on: new credentials for this page alone (the previous
    page's stop working), sent in the reply and never shown or stored."""
    _checked_form()
    settings = settings_of(current_app)
    if not console_endpoint.enabled(settings):
        return jsonify(ok=False, message=_("Video in the console is turned off on this server.")), 404
    page, actions = console_endpoint.issue(settings)
    try:
        replies = send_actions(settings, actions, "provision")  # DBPut: AMI class system
    except ami.AmiUnavailable:
        return jsonify(ok=False, message=_("Asterisk cannot be reached; video in this page is not available.")), 503
    if not all(ami.succeeded(r) for r in replies):
        return jsonify(ok=False, message=_("Asterisk refused the console's credentials.")), 502
    with db_of(current_app).write() as session:
        audit.record(session, current_user.username, "console.video_on")
    response = jsonify(ok=True, **page)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/video/off")
@roles_required(Role.GOVERNOR_OFFICE)
def video_off():
    _checked_form()
    settings = settings_of(current_app)
    if not console_endpoint.revoke(settings):
        return jsonify(ok=False, message=_("Asterisk cannot be reached; video in this page is not available.")), 503
    return jsonify(ok=True)

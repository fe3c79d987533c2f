"""The JSON API under /api/v1 for integrations: the same operations as the web, by bearer token.

Every route checks the token's role as `roles_required` checks a signed-in user's; the public
routes (filing a complaint or suggestion, tracking) need no token and are rate limited per address.
The rules live in tawasul (booking, tickets, tracking, validation); these views only read JSON,
call them, and answer JSON. Errors are always `{"error": {"field": ..., "message": ...}}`:

  400  the request does not fit the schema (not a JSON object, a missing field, a wrong type or format)
  401  no bearer token, or an unknown or revoked one
  403  the token's role may not do this
  404  no such appointment or ticket (tracking: nothing matches the pair, whatever was wrong)
  409  refused by the state of things: the slot is taken, the appointment is cancelled, ...
  422  fits the schema, but the rules refuse a value (check digit, not a session slot, ...)
  429  too many requests from this address

The document describing all this is web/openapi.py, served at /api/v1/openapi.json.
CSRF does not apply here (no cookies are read: a token must be sent on every request).
"""
from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Blueprint, current_app, g, jsonify, request, url_for

from tawasul import api_tokens, booking, outbox, scheduling, tickets, tracking
from tawasul.models import (
    Appointment,
    AppointmentKind,
    Governorate,
    LocationChoice,
    Role,
    Ticket,
    TicketKind,
    TicketStatus,
    utcnow,
)
from tawasul.references import normalise
from tawasul.validation import Conflict, InvalidInput
from web import csrf, db_of, limiter, public_limit, reference_limit
from web.ratelimits import reference_key

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

STAFF = (Role.STAFF,)
READERS = (Role.STAFF, Role.GOVERNOR_OFFICE)
TRACK_FIELD_MAX = 40
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Language(str, enum.Enum):
    """The language of the citizen's SMS messages."""
    AR = "ar"
    EN = "en"


class ApiError(Exception):
    def __init__(self, status: int, field: str | None, message: str):
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def error_response(status: int, field: str | None, message: str, errors: list[InvalidInput] | None = None):
    body = {"error": {"field": field, "message": message}}
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tawasul"'
    return response


def is_api_request() -> bool:
    return request.path == bp.url_prefix or request.path.startswith(bp.url_prefix + "/")


HTTP_MESSAGES = {
    400: "the request is malformed", 401: "a valid bearer token is required", 403: "not allowed",
    404: "not found", 405: "method not allowed", 413: "the request is too large",
    429: "too many requests; please wait a minute", 500: "internal error",
}


def http_error(code: int):
    """The JSON answer for an HTTP error raised outside a view (routing, rate limit, size)."""
    return error_response(code, None, HTTP_MESSAGES.get(code, "error"))


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    return error_response(error.status, error.field, error.message)


@bp.errorhandler(InvalidInput)
def _invalid(error: InvalidInput):
    status = 409 if isinstance(error, Conflict) else 422
    return error_response(status, error.field, error.message, getattr(error, "errors", None))


# ----------------------------------------------------------------------------- authentication

@dataclass(frozen=True)
class Caller:
    id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


def _bearer() -> str | None:
    """The bearer token sent, None when no Authorization header; 401 for any other scheme."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Authorization", "use 'Authorization: Bearer <token>'")
    return token.strip()


def _authenticate() -> Caller | None:
    token = _bearer()
    if token is None:
        return None
    db = db_of(current_app)
    with db.read_one() as connection:
        row = api_tokens.authenticate(connection, token)
        if row is None:
            raise ApiError(401, "Authorization", "unknown or revoked token")
        caller = Caller(row.id, row.name, row.role)
        stale = row.last_used_at is None or utcnow() - row.last_used_at >= api_tokens.TOUCH_EVERY
    if stale:
        with db.write() as session:
            api_tokens.touch(session, row)
    return caller


def api_roles(*roles: Role, public: bool = False):
    """A bearer token of one of these roles; with `public`, no token is needed (but a token sent
    must be valid and of one of these roles). The caller is `g.api_caller` (None when anonymous)."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            caller = _authenticate()
            if caller is None and not public:
                raise ApiError(401, "Authorization", "a bearer token is required")
            if caller is not None and caller.role not in roles:
                raise ApiError(403, None, f"a {caller.role.value} token may not do this")
            g.api_caller = caller
            return view(*args, **kwargs)
        wrapper.api_roles = roles  # read by the test that walks every API route with every role
        wrapper.api_public = public
        return wrapper
    return decorator


def _has_bearer() -> bool:
    return "Authorization" in request.headers


def _actor() -> str:
    caller = g.get("api_caller")
    return caller.actor if caller else "api:public"


# ------------------------------------------------------------------------------- input helpers

def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, None, "send a JSON object with Content-Type: application/json")
    return body


def _string(body: dict, name: str, required: bool = True, max_length: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, name, "is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, name, "must be a string")
    if max_length is not None and len(value) > max_length:
        raise ApiError(400, name, f"is too long ({max_length} characters at most)")
    return value


def _choice(value: str | None, name: str, enum_type):
    if value is None:
        return None
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise ApiError(400, name, f"must be one of: {allowed}") from None


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    if not DATE_RE.match(value):
        raise ApiError(400, name, "must be a date, YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, name, "must be a date, YYYY-MM-DD") from None


def _moment(value: str, name: str) -> dt.datetime:
    """An RFC 3339 date and time with its offset (Z or +03:00), returned in UTC."""
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]", value.strip()):
        raise ApiError(400, name, "must be a date and time with its offset, e.g. 2030-01-06T09:00:00+03:00")
    try:
        return moment.astimezone(dt.timezone.utc)
    except OverflowError:
        raise InvalidInput(name, "is not one of the governor's session slots") from None


def _reference(reference: str) -> str:
    return normalise(reference) or "-"


# ------------------------------------------------------------------------------------- output

def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _centre(centre) -> dict | None:
    return None if centre is None else {"code": centre.code, "name_ar": centre.name_ar, "name_en": centre.name_en}


def _appointment(session, appointment: Appointment, sms: str | None = None) -> dict:
    """`sms`: the text of the newest message to the citizen about it, when the caller has it (else it is read)."""
    plan = booking.schedule(session)
    if sms is None:
        messages = outbox.for_appointment(session, appointment)
        sms = messages[-1].body if messages else None
    return {
        "reference": appointment.reference,
        "checkin_code": appointment.checkin_code,
        "kind": appointment.kind.value,
        "status": appointment.status.value,
        "slot_start": _iso(appointment.slot_start),
        "slot_end": _iso(appointment.slot_end),
        "local_start": appointment.slot_start.astimezone(scheduling.zone(plan)).isoformat(),
        "seat": appointment.seat,
        "centre": _centre(appointment.centre),
        "location_choice": appointment.location_choice.value if appointment.location_choice else None,
        "subject": appointment.subject,
        "citizen_name": appointment.citizen.name,
        "cancel_reason": appointment.cancel_reason,
        "checked_in_at": _iso(appointment.checked_in_at),
        "created_at": _iso(appointment.created_at),
        "sms": sms,
    }


def _ticket_summary(ticket: Ticket, today: dt.date) -> dict:
    open_ = ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
    return {
        "reference": ticket.reference,
        "kind": ticket.kind.value,
        "status": ticket.status.value,
        "category": ticket.category,
        "subject": ticket.subject,
        "department": ticket.department.code if ticket.department else None,
        "due_date": ticket.due_date.isoformat() if ticket.due_date else None,
        "overdue": bool(open_ and ticket.due_date and ticket.due_date < today),
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
    }


def _ticket(session, ticket: Ticket, today: dt.date) -> dict:
    appointment_reference = None
    if ticket.appointment_id:
        appointment_reference = session.scalar(sa.select(Appointment.reference).where(
            Appointment.id == ticket.appointment_id))
    return {
        **_ticket_summary(ticket, today),
        "body": ticket.body,
        "appointment": appointment_reference,
        "history": [{"at": _iso(e.at), "from_status": e.from_status or None, "to_status": e.to_status,
                     "note": e.note, "actor": e.actor} for e in ticket.history],
        "attachments": [{"name": a.original_name, "content_type": a.content_type, "size": a.size}
                        for a in ticket.attachments],
    }


def _today(session) -> dt.date:
    return scheduling.local_day(booking.schedule(session), utcnow())


def _appointment_or_404(session, reference: str) -> Appointment:
    appointment = booking.by_reference(session, _reference(reference))
    if appointment is None:
        raise ApiError(404, "reference", "no appointment with this reference")
    return appointment


def _ticket_or_404(session, reference: str) -> Ticket:
    ticket = session.scalars(sa.select(Ticket).where(Ticket.reference == _reference(reference))).first()
    if ticket is None:
        raise ApiError(404, "reference", "no request with this reference")
    return ticket


# ---------------------------------------------------------------------------------- the routes

@bp.get("/openapi.json")
def openapi():
    from web.openapi import document
    return jsonify(document())


@bp.get("/slots")
@api_roles(*READERS)
def slots():
    """The free slots of a day: the video slots, or the seats of the daily session in person."""
    day = _date(request.args.get("date"), "date")
    if day is None:
        raise ApiError(400, "date", "is required")
    kind = _choice(request.args.get("kind", "video"), "kind", AppointmentKind)
    now = utcnow()
    with db_of(current_app).read() as session:
        plan = booking.schedule(session)
        if day < scheduling.local_day(plan, now):
            raise InvalidInput("date", "is in the past")
        zone = scheduling.zone(plan)
        length = dt.timedelta(minutes=plan.slot_minutes)
        if kind is AppointmentKind.VIDEO:
            starts = booking.free_video_slots(session, day, now)
            free = [(start, start + length, 1) for start in starts]
            full = booking.video_day_is_full(plan, day, starts)
        else:
            seats = booking.in_person_seats(session, day, now)
            free = [(seats[0], None, seats[1])] if seats and seats[1] else []
            full = booking.in_person_day_is_full(seats)
        return jsonify({
            "date": day.isoformat(), "kind": kind.value, "timezone": plan.timezone,
            "session_day": scheduling.is_session_day(plan, day), "full": full,
            "slots": [{"start": _iso(start), "end": _iso(end), "local_time": start.astimezone(zone).strftime("%H:%M"),
                       "seats_left": left} for start, end, left in free],
        })


@bp.post("/appointments")
@api_roles(*STAFF)
def book():
    """Find or register the citizen and book a slot; the SMS confirmation goes to the outbox."""
    body = _body()
    national_id = _string(body, "national_id", max_length=20)
    name = _string(body, "name", max_length=300)
    mobile = _string(body, "mobile", max_length=30)
    home = _string(body, "home_governorate", required=False, max_length=20)
    kind = _choice(_string(body, "kind"), "kind", AppointmentKind)
    at = _moment(_string(body, "at", max_length=40), "at")
    centre_code = _string(body, "centre", required=False, max_length=20)
    location_choice = _choice(_string(body, "location_choice", required=False), "location_choice", LocationChoice)
    subject = _string(body, "subject", required=False, max_length=500) or ""
    language = _choice(_string(body, "language", required=False) or "ar", "language", Language)
    with db_of(current_app).write() as session:
        home_id = None
        if home:
            home_id = session.scalar(sa.select(Governorate.id).where(Governorate.code == home.strip().upper()))
            if home_id is None:
                raise InvalidInput("home_governorate", f"no governorate with code {home!r}")
        citizen = booking.find_or_register_citizen(session, national_id, name, mobile, home_id, actor=_actor())
        centre, choice = booking.place(session, citizen, kind, location_choice, centre_code)
        appointment = booking.book(session, citizen=citizen, kind=kind, at=at, centre=centre,
                                   location_choice=choice, subject=subject, actor=_actor())
        sms = outbox.notify(session, booking.schedule(session), appointment, "booked", language.value)
        answer = _appointment(session, appointment, sms)
    response = jsonify(answer)
    response.status_code = 201
    response.headers["Location"] = url_for("api.appointment", reference=answer["reference"])
    return response


@bp.get("/appointments/<reference>")
@api_roles(*READERS)
def appointment(reference: str):
    with db_of(current_app).read() as session:
        return jsonify(_appointment(session, _appointment_or_404(session, reference)))


@bp.post("/appointments/<reference>/cancel")
@api_roles(*STAFF)
def cancel(reference: str):
    reason = _string(_body(), "reason", max_length=300)
    with db_of(current_app).write() as session:
        appointment = _appointment_or_404(session, reference)
        booking.cancel(session, appointment, reason, actor=_actor())
        sms = outbox.notify(session, booking.schedule(session), appointment, "cancelled",
                            outbox.language_for(session, appointment))
        return jsonify(_appointment(session, appointment, sms))


@bp.post("/appointments/<reference>/reschedule")
@api_roles(*STAFF)
def reschedule(reference: str):
    at = _moment(_string(_body(), "at", max_length=40), "at")
    with db_of(current_app).write() as session:
        appointment = _appointment_or_404(session, reference)
        booking.reschedule(session, appointment, at, actor=_actor())
        sms = outbox.notify(session, booking.schedule(session), appointment, "rescheduled",
                            outbox.language_for(session, appointment))
        return jsonify(_appointment(session, appointment, sms))


@bp.post("/appointments/<reference>/check-in")
@api_roles(*STAFF)
def check_in(reference: str):
    with db_of(current_app).write() as session:
        appointment = _appointment_or_404(session, reference)
        booking.check_in(session, appointment, actor=_actor())
        return jsonify(_appointment(session, appointment))


@bp.post("/tickets")
@limiter.limit(public_limit, exempt_when=_has_bearer)
@api_roles(*STAFF, public=True)
def file_ticket():
    """A complaint or suggestion: public (rate limited), or from staff with a token (who may also
    route it to a department and set its due date)."""
    body = _body()
    kind = _choice(_string(body, "kind"), "kind", TicketKind)
    if kind not in tickets.PUBLIC_KINDS:
        raise ApiError(400, "kind", "must be one of: complaint, suggestion")
    category = _string(body, "category", max_length=60)
    subject = _string(body, "subject", max_length=2 * tickets.SUBJECT_MAX)
    text = _string(body, "body", max_length=2 * tickets.BODY_MAX)
    national_id = _string(body, "national_id", required=False, max_length=20) or ""
    mobile = _string(body, "mobile", required=False, max_length=30) or ""
    department_code = _string(body, "department", required=False, max_length=20)
    due_date = _date(_string(body, "due_date", required=False), "due_date")
    if g.api_caller is None and (department_code is not None or due_date is not None):
        raise ApiError(403, "department" if department_code is not None else "due_date",
                       "only staff route a request or set its due date")
    with db_of(current_app).write() as session:
        department = None
        if department_code is not None:
            department = tickets.department_by_code(session, department_code)
            if department is None:
                raise InvalidInput("department", f"no department with code {department_code!r}")
        today = _today(session)
        ticket = tickets.file_ticket(session, kind=kind, subject=subject, body=text, category=category,
                                     national_id=national_id, mobile=mobile, department=department,
                                     due_date=due_date, today=today, actor=_actor(),
                                     identity_checked=g.api_caller is not None)
        answer = _ticket_summary(ticket, today)
    response = jsonify(answer)
    response.status_code = 201
    if g.api_caller is not None:
        response.headers["Location"] = url_for("api.ticket", reference=answer["reference"])
    return response


@bp.get("/tickets")
@api_roles(*READERS)
def list_tickets():
    args = request.args
    status = _choice(args.get("status"), "status", TicketStatus)
    kind = _choice(args.get("kind"), "kind", TicketKind)
    open_value = args.get("open", "false")
    if open_value not in ("true", "false"):
        raise ApiError(400, "open", "must be true or false")
    limit_value = args.get("limit", "50")
    if not limit_value.isdigit() or not 1 <= int(limit_value) <= 200:
        raise ApiError(400, "limit", "must be a whole number from 1 to 200")
    with db_of(current_app).read() as session:
        department = None
        if args.get("department") is not None:
            department = tickets.department_by_code(session, args["department"])
            if department is None:
                raise InvalidInput("department", "no department with this code")
        rows = tickets.listing(session, department_id=department.id if department else None, status=status,
                               kind=kind, open_only=open_value == "true", limit=int(limit_value))
        today = _today(session)
        return jsonify({"tickets": [_ticket_summary(t, today) for t in rows]})


@bp.get("/tickets/<reference>")
@api_roles(*READERS)
def ticket(reference: str):
    with db_of(current_app).read() as session:
        return jsonify(_ticket(session, _ticket_or_404(session, reference), _today(session)))


@bp.patch("/tickets/<reference>")
@api_roles(*STAFF)
def update_ticket(reference: str):
    """A department's update: another department, a new status, a note (any of the three)."""
    body = _body()
    to = _choice(_string(body, "status", required=False), "status", TicketStatus)
    department_code = _string(body, "department", required=False, max_length=20)
    note = _string(body, "note", required=False, max_length=2000) or ""
    with db_of(current_app).write() as session:
        ticket = _ticket_or_404(session, reference)
        department = None
        if department_code is not None:
            department = tickets.department_by_code(session, department_code)
            if department is None:
                raise InvalidInput("department", f"no department with code {department_code!r}")
        tickets.update(session, ticket, to=to, department=department, note=note, actor=_actor())
        session.flush()
        return jsonify(_ticket(session, ticket, _today(session)))


NOT_FOUND = "nothing matches this reference and identity"


@bp.post("/track")
@limiter.limit(public_limit)
@limiter.shared_limit(reference_limit, scope="tracking-reference", key_func=reference_key)
def track():
    """Public tracking by reference and national ID (or mobile). A wrong pair and an unknown
    reference get the very same answer."""
    body = _body()
    reference = _string(body, "reference", max_length=TRACK_FIELD_MAX)
    identity = _string(body, "identity", max_length=TRACK_FIELD_MAX)
    with db_of(current_app).read() as session:
        found = tracking.lookup(session, reference, identity)
    if found is None:
        return error_response(404, "reference", NOT_FOUND)
    return jsonify({
        "reference": found.reference, "kind": found.kind, "status": found.status,
        "created_at": _iso(found.created_at),
        "steps": [{"status": s.status, "at": _iso(s.at)} for s in found.steps],
        "slot_start": _iso(found.slot_start),
        "centre": {"name_ar": found.centre[0], "name_en": found.centre[1]} if found.centre else None,
        "follow_ups": [{"reference": ref, "status": status} for ref, status in found.follow_ups],
    })


track.api_public = True

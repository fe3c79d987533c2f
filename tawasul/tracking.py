"""Public tracking: a reference number plus the citizen's national ID (or mobile) gives the status
and dated history of one booking, complaint, suggestion or directive, and nothing else: no names,
no staff, no notes. A wrong pair and an unknown reference give the same answer: None."""
from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import validation
from tawasul.models import Appointment, AuditEntry, Citizen, Ticket, TicketKind
from tawasul.references import normalise
from tawasul.validation import InvalidInput

# Audit actions on an appointment that a citizen may see, as the step they stand for.
APPOINTMENT_STEPS = {
    "appointment.book": "booked",
    "appointment.reschedule": "rescheduled",
    "appointment.check_in": "checked_in",
    "appointment.cancel": "cancelled",
}


@dataclass(frozen=True)
class Step:
    status: str
    at: dt.datetime


@dataclass(frozen=True)
class Tracked:
    reference: str
    kind: str                       # appointment | complaint | suggestion | directive
    status: str
    created_at: dt.datetime
    steps: list[Step]
    slot_start: dt.datetime | None = None          # appointments
    centre: tuple[str, str] | None = None          # (Arabic, English) names, video appointments
    follow_ups: list[tuple[str, str]] = field(default_factory=list)  # (reference, status) of directives


def _identity(value: str) -> tuple[str | None, str | None]:
    """(national ID, E.164 mobile) that the typed value could be; either may be None."""
    value = (value or "").strip()
    digits = "".join(c for c in value if c.isdigit())
    national = digits if len(digits) == 10 and digits[0] in "12" and digits == value.replace(" ", "") else None
    try:
        mobile = validation.mobile(value)
    except InvalidInput:
        mobile = None
    return national, mobile


def _matches(typed: tuple[str | None, str | None], national_ids: list[str | None], mobiles: list[str | None]) -> bool:
    national, mobile = typed
    ok = False
    for known in national_ids:
        if known and national and hmac.compare_digest(known, national):
            ok = True
    for known in mobiles:
        if known and mobile and hmac.compare_digest(known, mobile):
            ok = True
    return ok


# Built once: public tracking runs these for every request.
_APPOINTMENT_IDENTITY = sa.select(Appointment.id, Citizen.national_id, Citizen.mobile).join(
    Citizen, Appointment.citizen_id == Citizen.id).where(Appointment.reference == sa.bindparam("reference"))
_TICKET_IDENTITY = sa.select(Ticket.id, Ticket.contact_national_id, Ticket.contact_mobile, Citizen.national_id,
                             Citizen.mobile).outerjoin(Citizen, Ticket.citizen_id == Citizen.id).where(
    Ticket.reference == sa.bindparam("reference"))
# Compared against when a reference is unknown; no national ID starts with 0, no mobile is +0.
_NOBODY = (["0000000000", "0000000000"], ["+0", "+0"])
_STEPS = sa.select(AuditEntry.action, AuditEntry.at).where(
    AuditEntry.entity == "appointment", AuditEntry.entity_id == sa.bindparam("entity_id"),
    AuditEntry.action.in_(APPOINTMENT_STEPS)).order_by(AuditEntry.at, AuditEntry.id)
_FOLLOW_UPS = sa.select(Ticket.reference, Ticket.status).where(
    Ticket.appointment_id == sa.bindparam("appointment_id"), Ticket.kind == TicketKind.DIRECTIVE).order_by(Ticket.id)


def lookup(session: Session, reference: str, identity: str) -> Tracked | None:
    """One statement reads the reference's identity, found or not, and the typed identity is
    compared either way: a real reference with a wrong identity costs what an unknown one costs."""
    reference = normalise(reference)
    typed = _identity(identity)
    if not reference or typed == (None, None):
        return None
    if reference.startswith("A-"):
        row = session.execute(_APPOINTMENT_IDENTITY, {"reference": reference}).first()
        national_ids, mobiles = ([row.national_id], [row.mobile]) if row else _NOBODY
        if not _matches(typed, national_ids, mobiles) or row is None:
            return None
        return _appointment(session, session.get(Appointment, row.id))
    row = session.execute(_TICKET_IDENTITY, {"reference": reference}).first()
    national_ids, mobiles = ([row.contact_national_id, row.national_id], [row.contact_mobile, row.mobile]) if row \
        else _NOBODY
    if not _matches(typed, national_ids, mobiles) or row is None:
        return None
    ticket = session.get(Ticket, row.id)
    return Tracked(reference=ticket.reference, kind=ticket.kind.value, status=ticket.status.value,
                   created_at=ticket.created_at,
                   steps=[Step(e.to_status, e.at) for e in ticket.history
                          if e.to_status != e.from_status])  # notes without a change stay internal


def _appointment(session: Session, appointment: Appointment) -> Tracked:
    entries = session.execute(_STEPS, {"entity_id": str(appointment.id)}).all()
    follow_ups = session.execute(_FOLLOW_UPS, {"appointment_id": appointment.id}).all()
    centre = appointment.centre
    return Tracked(
        reference=appointment.reference, kind="appointment", status=appointment.status.value,
        created_at=appointment.created_at,
        steps=[Step(APPOINTMENT_STEPS[action], at) for action, at in entries],
        slot_start=appointment.slot_start,
        centre=(centre.name_ar, centre.name_en) if centre else None,
        follow_ups=[(ref, status.value) for ref, status in follow_ups],
    )

"""Complaints, suggestions and directive follow-ups, with their status rules and history."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit, outbox
from tawasul.models import Appointment, Citizen, Department, Ticket, TicketEvent, TicketKind, TicketStatus
from tawasul.references import new_reference
from tawasul.validation import Conflict, InvalidInput

S = TicketStatus
TRANSITIONS: dict[TicketStatus, set[TicketStatus]] = {
    S.RECEIVED: {S.UNDER_REVIEW, S.REFERRED, S.CLOSED},
    S.UNDER_REVIEW: {S.REFERRED, S.RESOLVED},
    S.REFERRED: {S.UNDER_REVIEW, S.RESOLVED},
    S.RESOLVED: {S.CLOSED, S.UNDER_REVIEW},  # reopened when the citizen is not satisfied
    S.CLOSED: set(),
}


def open_ticket(session: Session, *, kind: TicketKind, subject: str, body: str = "",
                category: str = "", citizen: Citizen | None = None,
                department: Department | None = None, due_date: dt.date | None = None,
                appointment: Appointment | None = None, actor: str) -> Ticket:
    subject = " ".join((subject or "").split())
    if not subject:
        raise InvalidInput("subject", "is required")
    if kind is TicketKind.DIRECTIVE and (department is None or appointment is None):
        raise InvalidInput("department", "a directive needs a session and a department to follow it up")
    ticket = Ticket(
        reference=new_reference(kind.value), kind=kind, subject=subject[:300], body=body or "",
        category=category, citizen=citizen, department=department, due_date=due_date,
        appointment_id=appointment.id if appointment else None,
        status=S.REFERRED if department is not None else S.RECEIVED,
    )
    ticket.history.append(TicketEvent(to_status=ticket.status.value, actor=actor))
    session.add(ticket)
    audit.record(session, actor, "ticket.open", ticket, kind=kind.value)
    return ticket


def move(session: Session, ticket: Ticket, to: TicketStatus, actor: str, note: str = "") -> None:
    if to not in TRANSITIONS[ticket.status]:
        raise Conflict("status", f"a {ticket.status.value} request cannot become {to.value}")
    if to is S.REFERRED and ticket.department_id is None:
        raise InvalidInput("department", "choose the department to refer the request to")
    ticket.history.append(TicketEvent(from_status=ticket.status.value, to_status=to.value,
                                      note=(note or "")[:1000], actor=actor))
    ticket.status = to
    audit.record(session, actor, "ticket.move", ticket, to=to.value)
    outbox.notify_ticket(session, ticket)


def overdue(session: Session, today: dt.date) -> list[Ticket]:
    return list(session.scalars(sa.select(Ticket).where(
        Ticket.due_date < today, Ticket.status.not_in([S.RESOLVED, S.CLOSED])).order_by(Ticket.due_date)))


# --- Filing, routing and follow-up (called by the web and the API; the rules live here) ---

SUBJECT_MAX = 300
BODY_MAX = 5000
DIRECTIVE_MAX = 1000

# Category -> the department that receives it unless staff choose another (codes of Department.code).
CATEGORIES: dict[str, str] = {
    "municipal": "MUN",
    "health": "HLT",
    "education": "EDU",
    "roads": "TRN",
    "social": "SOC",
    "rights": "CIT",
    "other": "CIT",
}

# Days a department has, from filing, before a ticket shows on the overdue list.
DUE_DAYS: dict[TicketKind, int] = {TicketKind.COMPLAINT: 14, TicketKind.SUGGESTION: 30, TicketKind.DIRECTIVE: 14}

PUBLIC_KINDS = (TicketKind.COMPLAINT, TicketKind.SUGGESTION)


def department_by_code(session: Session, code: str) -> Department | None:
    return session.scalars(sa.select(Department).where(Department.code == (code or "").strip().upper())).first()


def default_department(session: Session, category: str) -> Department | None:
    code = CATEGORIES.get(category)
    return department_by_code(session, code) if code else None


def _text(value: str, field: str, limit: int, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not " ".join(value.split()):
        raise InvalidInput(field, "is required")
    if len(value) > limit:
        raise InvalidInput(field, f"is too long ({limit} characters at most)")
    return value


def file_ticket(session: Session, *, kind: TicketKind, subject: str, body: str, category: str,
                national_id: str = "", mobile: str = "", department: Department | None = None,
                due_date: dt.date | None = None, today: dt.date, actor: str,
                identity_checked: bool = False) -> Ticket:
    """A complaint or suggestion, from the public form or recorded by staff. Validates everything
    before writing: the ticket starts `received`, routed to `department` or the category's default.
    It joins a citizen's record only when staff checked who filed it (`identity_checked`): anyone
    can type someone else's national ID on the public form, so a public filing keeps its own contact
    details, self-declared, until staff link it (`link_citizen`)."""
    from tawasul import validation

    if kind not in PUBLIC_KINDS:
        raise InvalidInput("kind", "choose complaint or suggestion")
    subject = _text(subject, "subject", SUBJECT_MAX)
    body = _text(body, "body", BODY_MAX)
    if category not in CATEGORIES:
        raise InvalidInput("category", "choose a category")
    national_id = validation.national_id(national_id) if (national_id or "").strip() else None
    mobile = validation.mobile(mobile) if (mobile or "").strip() else None
    if due_date is not None and due_date < today:
        raise InvalidInput("due_date", "cannot be in the past")
    citizen = citizen_for(session, national_id) if identity_checked else None
    ticket = open_ticket(session, kind=kind, subject=subject, body=body, category=category,
                         citizen=citizen, actor=actor,
                         due_date=due_date or today + dt.timedelta(days=DUE_DAYS[kind]))
    ticket.contact_national_id, ticket.contact_mobile = national_id, mobile
    ticket.department = department or default_department(session, category)
    session.flush()
    return ticket


def citizen_for(session: Session, national_id: str | None) -> Citizen | None:
    if not national_id:
        return None
    return session.scalars(sa.select(Citizen).where(Citizen.national_id == national_id)).first()


def self_declared(ticket: Ticket) -> bool:
    """Filed with a national ID that nobody has checked yet."""
    return ticket.citizen_id is None and bool(ticket.contact_national_id)


def link_citizen(session: Session, ticket: Ticket, actor: str) -> Citizen:
    """Staff checked the filer's identity: the ticket joins the record of the citizen with its national ID."""
    if not self_declared(ticket):
        raise Conflict("citizen", "this request has no self-declared national ID to check")
    citizen = citizen_for(session, ticket.contact_national_id)
    if citizen is None:
        raise InvalidInput("citizen", "no citizen has this national ID on record")
    ticket.citizen = citizen
    session.flush()
    audit.record(session, actor, "ticket.link_citizen", ticket, citizen=citizen.id)
    return citizen


def route(session: Session, ticket: Ticket, department: Department, actor: str) -> None:
    """Give the ticket to another department (its status is left alone; `move` refers it)."""
    if ticket.status is S.CLOSED:
        raise Conflict("department", "a closed request cannot be routed")
    if ticket.department_id == department.id:
        return
    previous = ticket.department_id
    ticket.department = department
    session.flush()
    audit.record(session, actor, "ticket.route", ticket, department=department.code,
                 previous=previous)


def update(session: Session, ticket: Ticket, *, to: TicketStatus | None, department: Department | None,
           note: str, actor: str) -> None:
    """A department's update: optionally another department, then optionally a new status."""
    note = _text(note, "note", 1000, required=False)
    if to is None and not note and (department is None or department.id == ticket.department_id):
        raise InvalidInput("status", "choose a new status, another department or write a note")
    if department is not None:
        route(session, ticket, department, actor)
    if to is not None:
        move(session, ticket, to, actor, note)
    elif note:
        # A note without a status change is kept in the history as an event on the same status.
        ticket.history.append(TicketEvent(from_status=ticket.status.value, to_status=ticket.status.value,
                                          note=note, actor=actor))
        audit.record(session, actor, "ticket.note", ticket)


def issue_directive(session: Session, *, appointment: Appointment, text: str, department: Department | None,
                    due_date: dt.date | None, today: dt.date, actor: str) -> Ticket:
    """The governor's directive on a session: a follow-up ticket for a department, linked to the
    appointment and to its citizen (who then sees its status by tracking)."""
    text = _text(text, "text", DIRECTIVE_MAX)
    if department is None:
        raise InvalidInput("department", "choose the department to follow it up")
    if due_date is None:
        raise InvalidInput("due_date", "is required")
    if due_date < today:
        raise InvalidInput("due_date", "cannot be in the past")
    subject = " ".join(text.split())
    return open_ticket(session, kind=TicketKind.DIRECTIVE,
                       subject=subject if len(subject) <= 120 else subject[:119] + "…", body=text,
                       citizen=appointment.citizen, department=department, due_date=due_date,
                       appointment=appointment, actor=actor)


def listing(session: Session, *, department_id: int | None = None, status: TicketStatus | None = None,
            kind: TicketKind | None = None, appointment_id: int | None = None, open_only: bool = False,
            limit: int = 200) -> list[Ticket]:
    query = sa.select(Ticket)
    if appointment_id is not None:
        query = query.where(Ticket.appointment_id == appointment_id)
    if department_id is not None:
        query = query.where(Ticket.department_id == department_id)
    if status is not None:
        query = query.where(Ticket.status == status)
    if kind is not None:
        query = query.where(Ticket.kind == kind)
    if open_only:
        query = query.where(Ticket.status.not_in([S.RESOLVED, S.CLOSED]))
    return list(session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)))


def by_id(session: Session, ticket_id: int) -> Ticket | None:
    return session.get(Ticket, ticket_id)

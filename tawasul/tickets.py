"""Complaints, suggestions and directive follow-ups, with their status rules and history."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import Appointment, Citizen, Department, Ticket, TicketEvent, TicketKind, TicketStatus
from tawasul.references import new_reference
from tawasul.validation import InvalidInput

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
        raise InvalidInput("status", f"a {ticket.status.value} request cannot become {to.value}")
    if to is S.REFERRED and ticket.department_id is None:
        raise InvalidInput("department", "choose the department to refer the request to")
    ticket.history.append(TicketEvent(from_status=ticket.status.value, to_status=to.value,
                                      note=(note or "")[:1000], actor=actor))
    ticket.status = to
    audit.record(session, actor, "ticket.move", ticket, to=to.value)


def overdue(session: Session, today: dt.date) -> list[Ticket]:
    return list(session.scalars(sa.select(Ticket).where(
        Ticket.due_date < today, Ticket.status.not_in([S.RESOLVED, S.CLOSED])).order_by(Ticket.due_date)))

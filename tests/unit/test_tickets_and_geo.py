import datetime as dt

import pytest
import sqlalchemy as sa

from tawasul import geo, tickets
from tawasul.models import Department, TicketKind, TicketStatus
from tawasul.validation import InvalidInput


def test_a_complaint_moves_through_its_statuses_with_history(demo_db):
    with demo_db.write() as session:
        department = session.scalars(sa.select(Department).where(Department.code == "MUN")).one()
        ticket = tickets.open_ticket(session, kind=TicketKind.COMPLAINT, subject="  طريق  متضرر ",
                                     actor="staff")
        assert ticket.reference.startswith("C-") and ticket.subject == "طريق متضرر"
        tickets.move(session, ticket, TicketStatus.UNDER_REVIEW, "staff")
        with pytest.raises(InvalidInput, match="department"):
            tickets.move(session, ticket, TicketStatus.REFERRED, "staff")
        ticket.department = department
        session.flush()
        for status in (TicketStatus.REFERRED, TicketStatus.RESOLVED, TicketStatus.CLOSED):
            tickets.move(session, ticket, status, "staff", note=status.value)
        with pytest.raises(InvalidInput, match="closed request cannot become under_review"):
            tickets.move(session, ticket, TicketStatus.UNDER_REVIEW, "staff")
        assert [e.to_status for e in ticket.history] == [
            "received", "under_review", "referred", "resolved", "closed"]


def test_a_directive_needs_a_department_and_starts_referred(demo_db):
    with demo_db.write() as session:
        with pytest.raises(InvalidInput, match="department"):
            tickets.open_ticket(session, kind=TicketKind.DIRECTIVE, subject="متابعة", actor="gov")


def test_overdue_lists_open_tickets_past_their_due_date(demo_db):
    today = dt.date(2026, 12, 10)
    with demo_db.write() as session:
        late = tickets.open_ticket(session, kind=TicketKind.COMPLAINT, subject="a", actor="s",
                                   due_date=today - dt.timedelta(days=1))
        tickets.open_ticket(session, kind=TicketKind.SUGGESTION, subject="b", actor="s",
                            due_date=today + dt.timedelta(days=1))
        assert tickets.overdue(session, today) == [late]


def test_nearest_centre_is_the_citizens_own_governorate_with_distance(demo_db):
    with demo_db.read() as session:
        ranked = geo.nearest_centres(session, 24.09, 38.06)   # in Yanbu
        assert ranked[0][0].code == "YNB" and ranked[0][1] < 1
        assert ranked[1][0].code in {"BDR", "EIS"}
        assert [d for _c, d in ranked] == sorted(d for _c, d in ranked)
    # Al-Madinah to Yanbu is about 160 km as the crow flies.
    assert 150 < geo.distance_km(24.4672, 39.6111, 24.0891, 38.0637) < 175

"""The Governor's directives on a session, each a follow-up ticket for a department."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, TextAreaField
from wtforms.validators import Optional

from tawasul import tickets
from tawasul.models import Appointment, Role, TicketKind
from tawasul.validation import InvalidInput
from web import db_of
from web.auth import roles_required
from web.tickets import READERS, department_choices, department_name, show_error, today

bp = Blueprint("followups", __name__, url_prefix="/followups")


class DirectiveForm(FlaskForm):
    text = TextAreaField(_l("The Governor's directive"))
    department = SelectField(_l("Department to follow it up"), validate_choice=False)
    due_date = DateField(_l("Due date"), validators=[Optional()])


@bp.route("/appointment/<int:appointment_id>", methods=["GET", "POST"])
@roles_required(Role.GOVERNOR_OFFICE)
def directive(appointment_id: int):
    form = DirectiveForm()
    with db_of(current_app).read() as session:
        appointment = session.get(Appointment, appointment_id)
        if appointment is None:
            abort(404)
        reference = appointment.reference
        form.department.choices = department_choices(session, _l("Choose…"))
        existing = [(t.id, t.reference, t.status.value) for t in tickets.listing(
            session, kind=TicketKind.DIRECTIVE, appointment_id=appointment_id)]
    status = 200
    if form.validate_on_submit():
        try:
            with db_of(current_app).write() as session:
                appointment = session.get(Appointment, appointment_id)
                department = tickets.department_by_code(session, form.department.data) \
                    if form.department.data else None
                ticket = tickets.issue_directive(
                    session, appointment=appointment, text=form.text.data, department=department,
                    due_date=form.due_date.data, today=today(), actor=current_user.username)
                ticket_id = ticket.id
        except InvalidInput as error:
            show_error(form, error)
            status = 400
        else:
            return redirect(url_for("tickets.detail", ticket_id=ticket_id, filed=1))
    elif form.is_submitted():
        status = 400
    return render_template("followups/directive.html", form=form, reference=reference,
                           existing=existing), status


@bp.get("/")
@roles_required(*READERS)
def index():
    with db_of(current_app).read() as session:
        rows = tickets.listing(session, kind=TicketKind.DIRECTIVE)
        return render_template("tickets/list.html", rows=rows, departments=None, department=None, status="",
                               kind="directive", open_only=False, today=today(),
                               department_name=department_name, title=_l("The Governor's directives"))

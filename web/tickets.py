"""Complaints and suggestions: the public form, the staff form, lists (by department, overdue),
a ticket's page with its history, its attachments and the department's update."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request, send_file,
                   session as cookie, url_for)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, MultipleFileField, RadioField, SelectField, StringField, TextAreaField
from wtforms import SelectChoice as choice
from wtforms.validators import Optional

from tawasul import attachments, booking, scheduling, tickets
from tawasul.models import Department, Role, TicketKind, TicketStatus
from tawasul.validation import InvalidInput
from web import db_of, limiter, public_limit, settings_of
from web.auth import roles_required
from web.forms import ActionForm

bp = Blueprint("tickets", __name__)

READERS = (Role.STAFF, Role.GOVERNOR_OFFICE)
FILED_KEY = "tickets.filed"

CATEGORY_LABELS = {
    "municipal": _l("Municipal services"),
    "health": _l("Health"),
    "education": _l("Education"),
    "roads": _l("Roads and transport"),
    "social": _l("Social services"),
    "rights": _l("Citizens' rights"),
    "other": _l("Other"),
}

STATUS_LABELS = {
    "received": _l("Received"),
    "under_review": _l("Under review"),
    "referred": _l("Referred to the department"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
    # appointments (public tracking)
    "booked": _l("Booked"),
    "rescheduled": _l("Rescheduled"),
    "checked_in": _l("Checked in"),
    "waiting": _l("Waiting"),
    "in_session": _l("In session"),
    "completed": _l("Completed"),
    "no_show": _l("No-show"),
    "failed": _l("Failed"),
    "cancelled": _l("Cancelled"),
}
KIND_LABELS = {
    "complaint": _l("Complaint"),
    "suggestion": _l("Suggestion"),
    "directive": _l("The Governor's directive"),
    "appointment": _l("Appointment with the Governor"),
}


@bp.app_template_global()
def status_label(value: str) -> str:
    return str(STATUS_LABELS.get(value, value))


@bp.app_template_global()
def kind_label(value: str) -> str:
    return str(KIND_LABELS.get(value, value))


@bp.app_template_global()
def category_label(value: str) -> str:
    return str(CATEGORY_LABELS.get(value, value or "—"))


def category_choices():
    return [choice("", _l("Choose…"))] + [choice(code, CATEGORY_LABELS[code]) for code in tickets.CATEGORIES]


class TicketForm(FlaskForm):
    kind = RadioField(_l("Type"), choices=[choice("complaint", _l("Complaint")), choice("suggestion", _l("Suggestion"))],
                      default="complaint", validate_choice=False)
    category = SelectField(_l("Category"), validate_choice=False)
    subject = StringField(_l("Subject"))
    body = TextAreaField(_l("Details"))
    national_id = StringField(_l("National ID or iqama number (optional, to track your request)"))
    mobile = StringField(_l("Mobile number (optional)"))
    attachments = MultipleFileField(_l("Attachments (PDF, JPEG or PNG; up to 3 files of 2 MB each)"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.category.choices = category_choices()


class PublicTicketForm(TicketForm):
    # The honeypot: hidden from people (and from screen readers); a bot that fills it is dropped.
    website = StringField(_l("Leave this field empty"))


class StaffTicketForm(TicketForm):
    national_id = StringField(_l("Citizen's national ID or iqama number (optional)"))
    mobile = StringField(_l("Citizen's mobile number (optional)"))
    department = SelectField(_l("Department"), validate_choice=False)
    due_date = DateField(_l("Due date (optional)"), validators=[Optional()])


class UpdateForm(FlaskForm):
    status = SelectField(_l("New status"), validate_choice=False)
    department = SelectField(_l("Department"), validate_choice=False)
    note = TextAreaField(_l("Note (internal, never shown to the citizen)"))


def today() -> dt.date:
    with db_of(current_app).read() as session:
        return dt.datetime.now(scheduling.zone(booking.schedule(session))).date()


def departments(session) -> list[Department]:
    return list(session.scalars(sa.select(Department).order_by(Department.id)))


def department_name(department: Department | None) -> str:
    if department is None:
        return ""
    from web.i18n import current_language
    return department.name_ar if current_language() == "ar" else department.name_en


def department_choices(session, empty_label) -> list[choice]:
    return [choice("", empty_label)] + [choice(d.code, department_name(d)) for d in departments(session)]


def show_error(form: FlaskForm, error: InvalidInput) -> None:
    """Put a service's refusal beside its field, in the reader's language."""
    message = _(error.message)
    if error.field == "status" and "cannot become" in error.message:
        message = _("This request cannot move to that status from where it is now.")
    target = getattr(form, error.field, None)
    if target is None:
        target = form.subject
    target.errors = list(target.errors) + [message]


def uploaded_files(form: TicketForm) -> list[tuple[str, bytes]]:
    files = []
    for storage in request.files.getlist(form.attachments.name):
        if not storage or not storage.filename:
            continue
        files.append((storage.filename, storage.stream.read(attachments.MAX_BYTES + 1)))
    return files


def kind_of(value: str) -> TicketKind:
    try:
        kind = TicketKind(value)
    except ValueError:
        kind = None
    if kind not in tickets.PUBLIC_KINDS:
        raise InvalidInput("kind", "choose complaint or suggestion")
    return kind


def file_from(form: TicketForm, actor: str, department_code: str = "", due_date=None,
              identity_checked: bool = False):
    """Check the files, then write the ticket, its routing and its files in one transaction.
    Returns the reference; raises InvalidInput with nothing written."""
    uploads = attachments.check_all(uploaded_files(form))
    kind = kind_of(form.kind.data)
    written = []
    settings = settings_of(current_app)
    day = today()
    try:
        with db_of(current_app).write() as session:
            attachments.check_room(session, settings.state_dir, uploads, actor,
                                   public_mb_a_day=settings.public_attachments_mb_a_day,
                                   free_space_floor_mb=settings.free_space_floor_mb)
            department = None
            if department_code:
                department = tickets.department_by_code(session, department_code)
                if department is None:
                    raise InvalidInput("department", "choose a department")
            ticket = tickets.file_ticket(
                session, kind=kind, subject=form.subject.data, body=form.body.data,
                category=form.category.data or "", national_id=form.national_id.data,
                mobile=form.mobile.data, department=department, due_date=due_date, today=day, actor=actor,
                identity_checked=identity_checked)
            attachments.save(session, ticket, settings.state_dir, uploads, actor, written)
            reference = ticket.reference
    except BaseException:
        attachments.discard(written)
        raise
    return reference


# --- public ---

@bp.route("/complaints/new", methods=["GET", "POST"])
@limiter.limit(public_limit, methods=["POST"])
def public_new():
    form = PublicTicketForm()
    status = 200
    if form.validate_on_submit():
        if form.website.data:
            # A bot: say thank you, write nothing, give no reference.
            return render_template("tickets/public_done.html", reference=None)
        try:
            reference = file_from(form, actor=attachments.PUBLIC)
        except InvalidInput as error:
            show_error(form, error)
            status = 400
        else:
            cookie[FILED_KEY] = reference
            return redirect(url_for("tickets.public_done"))
    elif form.is_submitted():
        status = 400
    return render_template("tickets/public_form.html", form=form), status


@bp.get("/complaints/received")
def public_done():
    reference = cookie.pop(FILED_KEY, None)
    if reference is None:
        return redirect(url_for("tickets.public_new"))
    return render_template("tickets/public_done.html", reference=reference)


# --- staff ---

@bp.route("/tickets/new", methods=["GET", "POST"])
@roles_required(Role.STAFF)
def staff_new():
    form = StaffTicketForm()
    with db_of(current_app).read() as session:
        form.department.choices = department_choices(session, _l("By category"))
    status = 200
    if form.validate_on_submit():
        try:
            reference = file_from(form, actor=current_user.username, department_code=form.department.data,
                                  due_date=form.due_date.data, identity_checked=True)
        except InvalidInput as error:
            show_error(form, error)
            status = 400
        else:
            with db_of(current_app).read() as session:
                ticket_id = session.scalars(sa.select(tickets.Ticket.id).where(
                    tickets.Ticket.reference == reference)).one()
            return redirect(url_for("tickets.detail", ticket_id=ticket_id, filed=1))
    elif form.is_submitted():
        status = 400
    return render_template("tickets/staff_form.html", form=form), status


@bp.get("/tickets/")
@roles_required(*READERS)
def index():
    code = request.args.get("department", "")
    status_value = request.args.get("status", "")
    kind_value = request.args.get("kind", "")
    try:
        status = TicketStatus(status_value) if status_value else None
        kind = TicketKind(kind_value) if kind_value else None
    except ValueError:
        abort(400)
    with db_of(current_app).read() as session:
        department = tickets.department_by_code(session, code) if code else None
        if code and department is None:
            abort(404)
        rows = tickets.listing(session, department_id=department.id if department else None,
                               status=status, kind=kind, open_only=request.args.get("open") == "1")
        return render_template("tickets/list.html", rows=rows, departments=departments(session),
                               department=department, status=status_value, kind=kind_value,
                               open_only=request.args.get("open") == "1", today=today(),
                               department_name=department_name, title=_("Requests"))


@bp.get("/tickets/overdue")
@roles_required(*READERS)
def overdue():
    day = today()
    with db_of(current_app).read() as session:
        rows = tickets.overdue(session, day)
        return render_template("tickets/list.html", rows=rows, departments=None, department=None, status="",
                               kind="", open_only=False, today=day, department_name=department_name,
                               title=_("Overdue requests"))


def _detail(ticket_id: int, form: UpdateForm | None = None, status: int = 200):
    with db_of(current_app).read() as session:
        ticket = tickets.by_id(session, ticket_id)
        if ticket is None:
            abort(404)
        form = form or UpdateForm(formdata=None)
        form.status.choices = [choice("", _l("Keep the current status"))] + [
            choice(s.value, STATUS_LABELS[s.value]) for s in TicketStatus if s in tickets.TRANSITIONS[ticket.status]]
        form.department.choices = department_choices(session, _l("Keep the current department"))
        appointment_reference = None
        if ticket.appointment_id:
            appointment_reference = session.scalars(sa.select(tickets.Appointment.reference).where(
                tickets.Appointment.id == ticket.appointment_id)).first()
        return render_template("tickets/detail.html", ticket=ticket, form=form, history=ticket.history,
                               files=ticket.attachments, citizen=ticket.citizen, department=ticket.department,
                               self_declared=tickets.self_declared(ticket), link_form=ActionForm(formdata=None),
                               department_name=department_name, appointment_reference=appointment_reference,
                               today=today(), filed=request.args.get("filed") == "1"), status


@bp.get("/tickets/<int:ticket_id>")
@roles_required(*READERS)
def detail(ticket_id: int):
    return _detail(ticket_id)


@bp.post("/tickets/<int:ticket_id>/update")
@roles_required(Role.STAFF)
def update(ticket_id: int):
    form = UpdateForm()
    if not form.validate_on_submit():
        return _detail(ticket_id, form, 400)
    try:
        with db_of(current_app).write() as session:
            ticket = tickets.by_id(session, ticket_id)
            if ticket is None:
                abort(404)
            to = None
            if form.status.data:
                try:
                    to = TicketStatus(form.status.data)
                except ValueError:
                    raise InvalidInput("status", "choose a status") from None
            department = None
            if form.department.data:
                department = tickets.department_by_code(session, form.department.data)
                if department is None:
                    raise InvalidInput("department", "choose a department")
            tickets.update(session, ticket, to=to, department=department, note=form.note.data,
                           actor=current_user.username)
    except InvalidInput as error:
        show_error(form, error)
        return _detail(ticket_id, form, 400)
    return redirect(url_for("tickets.detail", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/link-citizen")
@roles_required(Role.STAFF)
def link_citizen(ticket_id: int):
    """Staff have checked the filer's identity document: the request joins that citizen's record."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with db_of(current_app).write() as session:
            ticket = tickets.by_id(session, ticket_id)
            if ticket is None:
                abort(404)
            tickets.link_citizen(session, ticket, actor=current_user.username)
    except InvalidInput as error:
        flash(_(error.message), "error")
    return redirect(url_for("tickets.detail", ticket_id=ticket_id))


@bp.get("/tickets/<int:ticket_id>/attachments/<int:attachment_id>")
@roles_required(*READERS)
def attachment(ticket_id: int, attachment_id: int):
    with db_of(current_app).write() as session:
        row = session.get(tickets.Ticket, ticket_id) and session.get(attachments.Attachment, attachment_id)
        if row is None or row.ticket_id != ticket_id:
            abort(404)
        attachments.audit.record(session, current_user.username, "attachment.download", row, ticket=ticket_id)
        path = attachments.path_of(settings_of(current_app).state_dir, row)
        name, content_type = row.original_name, row.content_type
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype=content_type, as_attachment=True, download_name=name, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response

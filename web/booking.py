"""Staff booking: find or register the citizen, choose the meeting and its place, pick a free
slot, confirm (reference, check-in code, printable page, SMS in the outbox); reschedule, cancel,
waitlist for full days, check-in at the desk, and the door list of the daily session.

The rules live in tawasul (booking, waitlist, outbox, geo, validation); these views only gather
input, call them, and show what they answer. The citizen chosen in step 1 is kept in the
signed session by database id: the national ID never travels in a URL.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask import session as web_session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import (
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms import SelectChoice as choice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from tawasul import booking, geo, outbox, scheduling, validation, waitlist
from tawasul.booking import SlotTaken
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Centre,
    Citizen,
    Governorate,
    LocationChoice,
    Role,
    WaitlistEntry,
    utcnow,
)
from tawasul.validation import InvalidInput
from web import db_of
from web.auth import roles_required
from web.forms import ActionForm
from web.i18n import LANGUAGE_CHOICES, current_language

bp = Blueprint("booking", __name__, url_prefix="/booking")
FLOW = "booking"  # the key of the flow's state in the signed session
STAFF = (Role.STAFF,)
VIEWERS = (Role.STAFF, Role.GOVERNOR_OFFICE)

# The core's refusals, as it words them (English msgids, translated in translations/booking).
CORE_MESSAGES = {m: m for m in (
    "must be 10 digits", "must start with 1 (national ID) or 2 (iqama)",
    "check digit does not match; please re-check the number",
    "is not a phone number", "is not a valid number", "must be a mobile number",
    "is required", "is too long (200 characters at most)",
    "is not one of the governor's session slots", "the governor holds no session on that day", "is in the past",
    "this slot is already booked", "the governor's session on that day is full",
    "this slot has just been taken; please choose another",
    "please give a reason for the cancellation", "a video session needs a reception centre",
    "this day still has free slots; please book one", "this citizen is already on the waitlist for that day",
    "this waitlist entry has no open offer", "this waitlist entry is already closed",
    "this appointment's time has passed",
)}
_MARKED = [_l("must be 10 digits"), _l("must start with 1 (national ID) or 2 (iqama)"),  # for extraction
           _l("check digit does not match; please re-check the number"), _l("is not a phone number"),
           _l("is not a valid number"), _l("must be a mobile number"), _l("is required"),
           _l("is too long (200 characters at most)"), _l("is not one of the governor's session slots"),
           _l("the governor holds no session on that day"), _l("is in the past"), _l("this slot is already booked"),
           _l("the governor's session on that day is full"),
           _l("this slot has just been taken; please choose another"),
           _l("please give a reason for the cancellation"), _l("a video session needs a reception centre"),
           _l("this day still has free slots; please book one"),
           _l("this citizen is already on the waitlist for that day"),
           _l("this waitlist entry has no open offer"), _l("this waitlist entry is already closed"),
           _l("this appointment's time has passed")]


def say(error: InvalidInput) -> str:
    """The core's refusal in the page's language."""
    if error.message in CORE_MESSAGES:
        return _(error.message)
    if error.field == "status":
        return _("this appointment can no longer be changed")
    return _("is not valid")


def core_check(check):
    """A WTForms validator that asks tawasul.validation and shows its refusal beside the field."""
    def validator(_form, field):
        try:
            check(field.data)
        except InvalidInput as error:
            raise ValidationError(say(error)) from None
    return validator


# ---------------------------------------------------------------------------------------- forms

class CitizenForm(FlaskForm):
    national_id = StringField(_l("National ID or iqama number"),
                              validators=[core_check(validation.national_id)],
                              description=_l("10 digits, starting with 1 (citizens) or 2 (residents)"))
    name = StringField(_l("Full name"), validators=[core_check(validation.person_name)])
    mobile = StringField(_l("Mobile number"), validators=[core_check(validation.mobile)],
                         description=_l("e.g. 05XXXXXXXX"))
    governorate = SelectField(_l("Home governorate"), coerce=int, validate_choice=False)
    language = SelectField(_l("Language of the citizen's messages"),
                           choices=LANGUAGE_CHOICES)
    find = SubmitField(_l("Find"))
    proceed = SubmitField(_l("Continue"))

    def validate_governorate(self, field):
        if field.data not in {c.value for c in field.choices if c.value}:
            raise ValidationError(_("Please choose the home governorate."))


class MeetingForm(FlaskForm):
    kind = RadioField(_l("Kind of meeting"), choices=[
        choice("video", _l("A video session from a reception centre")),
        choice("in_person", _l("Attendance at the governor's daily session at the Emirate"))],
        validators=[DataRequired(_l("Please choose the kind of meeting."))])
    place = RadioField(_l("Where will the citizen be?"), choices=[
        choice("nearest_centre", _l("At the nearest centre to their home governorate")),
        choice("centre_on_date", _l("At another centre, where they will be on the chosen date"))],
        validators=[Optional()], default="nearest_centre")
    centre = SelectField(_l("Centre"), coerce=int, validate_choice=False)
    proceed = SubmitField(_l("Continue"))


class SlotForm(FlaskForm):
    day = HiddenField()
    slot = StringField(_l("Time"))
    subject = TextAreaField(_l("Subject of the meeting (optional)"), validators=[Length(max=500)])
    proceed = SubmitField(_l("Confirm the booking"))


class CancelForm(FlaskForm):
    reason = TextAreaField(_l("Reason for the cancellation"), validators=[Length(max=300)])
    cancel = SubmitField(_l("Cancel the appointment"))



# ------------------------------------------------------------------------------------- helpers

def _actor() -> str:
    return current_user.username


def _flow() -> dict:
    return dict(web_session.get(FLOW) or {})


def _name(thing) -> str:
    return thing.name_ar if current_language() == "ar" else thing.name_en


def _parse_day(value: str | None, plan, default: dt.date) -> tuple[dt.date, str | None]:
    """The day asked for (or `default`), and a field error for a day that cannot be booked."""
    if not value:
        return default, None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return default, _("is not a valid date")
    if day < scheduling.local_day(plan, utcnow()):
        return day, _("is in the past")
    return day, None


def _parse_slot(value: str | None) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat((value or "").strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput("at", "is not one of the governor's session slots")
    return moment


def _day_choices(session, kind: AppointmentKind, today: dt.date, now: dt.datetime) -> list[tuple[dt.date, int]]:
    """The next session days with how much is left on each (free slots or seats)."""
    days = []
    for day in booking.session_days(session, today, 10):
        if kind is AppointmentKind.VIDEO:
            days.append((day, len(booking.free_video_slots(session, day, now))))
        else:
            seats = booking.in_person_seats(session, day, now)
            days.append((day, seats[1] if seats else 0))
    return days


def _slot_options(session, kind: AppointmentKind, day: dt.date, now: dt.datetime):
    """(free slot starts, seats left or None) for a day."""
    if kind is AppointmentKind.VIDEO:
        return booking.free_video_slots(session, day, now), None
    seats = booking.in_person_seats(session, day, now)
    if seats is None or seats[1] == 0:
        return [], 0 if seats else None
    return [seats[0]], seats[1]


def _appointment_or_404(session, reference: str) -> Appointment:
    appointment = booking.by_reference(session, reference)
    if appointment is None:
        abort(404)
    return appointment


# -------------------------------------------------------------------------- step 1: the citizen

def _governorate_choices(session) -> list[choice]:
    governorates = session.scalars(sa.select(Governorate).order_by(Governorate.id)).all()
    return [choice(0, _("Choose…"))] + [choice(g.id, _name(g)) for g in governorates]


@bp.route("/", methods=["GET", "POST"])
@roles_required(*STAFF)
def citizen():
    db = db_of(current_app)
    form = CitizenForm()
    with db.read() as session:
        form.governorate.choices = _governorate_choices(session)
    if request.method == "GET":
        form.language.data = current_language()
    if form.is_submitted() and form.find.data:  # look the number up only; the rest is not checked yet
        form.validate()
        form.name.errors, form.mobile.errors, form.governorate.errors = [], [], []
        if form.national_id.errors or form.csrf_token.errors:
            return render_template("booking/citizen.html", form=form), 400
        with db.read() as session:
            found = booking.find_citizen(session, form.national_id.data)
        if found is None:
            flash(_("No citizen with this number yet: fill in the details to register them."), "info")
        else:
            form.name.data, form.mobile.data = found.name, found.mobile
            form.governorate.data = found.home_governorate_id or 0
            flash(_("Citizen found: check the details and continue."), "info")
        return render_template("booking/citizen.html", form=form)
    if form.validate_on_submit():
        try:
            with db.write() as session:
                person = booking.find_or_register_citizen(
                    session, form.national_id.data, form.name.data, form.mobile.data,
                    form.governorate.data, actor=_actor())
                citizen_id = person.id
        except InvalidInput as error:  # the form checked the same rules; kept for a race or a gap
            getattr(form, error.field, form.national_id).errors.append(say(error))
            return render_template("booking/citizen.html", form=form), 400
        web_session[FLOW] = {"citizen_id": citizen_id, "lang": form.language.data}
        return redirect(url_for("booking.meeting"))
    status = 400 if form.is_submitted() else 200
    return render_template("booking/citizen.html", form=form), status


def _flow_citizen(session) -> Citizen | None:
    citizen_id = _flow().get("citizen_id")
    return session.get(Citizen, citizen_id) if citizen_id else None


# ------------------------------------------------------------- steps 2 and 3: the meeting, where

@bp.route("/meeting", methods=["GET", "POST"])
@roles_required(*STAFF)
def meeting():
    db = db_of(current_app)
    form = MeetingForm()
    with db.read() as session:
        person = _flow_citizen(session)
        if person is None:
            flash(_("Start by finding or registering the citizen."), "info")
            return redirect(url_for("booking.citizen"))
        home = session.get(Governorate, person.home_governorate_id) if person.home_governorate_id else None
        ranked = (geo.nearest_centres(session, home.latitude, home.longitude, limit=1000)
                  if home is not None and home.latitude is not None else [])
        distance = {c.id: km for c, km in ranked}
        centres = sorted(session.scalars(sa.select(Centre).where(Centre.active)).all(),
                         key=lambda c: (distance.get(c.id, float("inf")), c.id))  # nearest first
        nearest = (ranked[0][0].id, _name(ranked[0][0]), ranked[0][1]) if ranked else None
        form.centre.choices = [choice(0, _("Choose…"))] + [
            choice(c.id, _name(c) + (" — " + _("%(km)s km", km=f"{distance[c.id]:.0f}") if c.id in distance else ""))
            for c in centres]
        citizen_name = person.name
    valid_centres = {c.value for c in form.centre.choices if c.value}
    if request.method == "GET":
        flow = _flow()
        form.kind.data = flow.get("kind")
        form.place.data = flow.get("place", "nearest_centre")
        form.centre.data = flow.get("centre_id") if flow.get("place") == "centre_on_date" else 0
    if form.validate_on_submit():
        place, centre_id = form.place.data or "nearest_centre", None
        if form.kind.data == "video":
            if place == "nearest_centre":
                if nearest is None:
                    form.place.errors.append(_("The citizen's home governorate has no known location; "
                                               "please choose a centre."))
                else:
                    centre_id = nearest[0]
            elif form.centre.data not in valid_centres:
                form.centre.errors.append(_("Please choose a centre."))
            else:
                centre_id = form.centre.data
        if not (form.place.errors or form.centre.errors):
            flow = _flow()
            flow.update(kind=form.kind.data, place=place if form.kind.data == "video" else None,
                        centre_id=centre_id)
            web_session[FLOW] = flow
            return redirect(url_for("booking.slots"))
    status = 400 if form.is_submitted() else 200
    return render_template("booking/meeting.html", form=form, nearest=nearest,
                           citizen_name=citizen_name), status


# -------------------------------------------------------------------- steps 4 and 5: slot, confirm

def _render_slots(session, form, kind, day, day_error, now, mode, appointment=None, centre=None, status=200):
    plan = booking.schedule(session)
    zone = scheduling.zone(plan)
    today = scheduling.local_day(plan, now)
    options, seats = ([], None) if day_error else _slot_options(session, kind, day, now)
    full = not day_error and booking.day_is_full(session, kind, day, now)
    return render_template(
        "booking/slots.html", form=form, kind=kind.value, day=day, day_error=day_error,
        days=_day_choices(session, kind, today, now),
        options=[(s.isoformat(), s.astimezone(zone)) for s in options], seats=seats, full=full,
        session_day=scheduling.is_session_day(plan, day), mode=mode, appointment=appointment,
        centre_name=_name(centre) if centre is not None else None, wait_form=ActionForm(),
        today=today), status


def _first_session_day(session, today: dt.date) -> dt.date:
    days = booking.session_days(session, today, 1)
    return days[0] if days else today


@bp.route("/slots", methods=["GET", "POST"])
@roles_required(*STAFF)
def slots():
    db = db_of(current_app)
    flow = _flow()
    if not flow.get("citizen_id") or not flow.get("kind"):
        flash(_("Start by finding or registering the citizen."), "info")
        return redirect(url_for("booking.citizen"))
    kind = AppointmentKind(flow["kind"])
    form = SlotForm()
    now = utcnow()
    if request.method == "POST" and form.validate_on_submit():
        try:
            with db.write() as session:
                person = session.get(Citizen, flow["citizen_id"])
                centre = session.get(Centre, flow["centre_id"]) if flow.get("centre_id") else None
                appointment = booking.book(
                    session, citizen=person, kind=kind, at=_parse_slot(form.slot.data), centre=centre,
                    location_choice=LocationChoice(flow["place"]) if flow.get("place") else None,
                    subject=form.subject.data or "", actor=_actor(), now=now)
                outbox.notify(session, booking.schedule(session), appointment, "booked", flow.get("lang", "ar"))
                reference = appointment.reference
        except InvalidInput as error:
            form.slot.errors = [say(error)]
            with db.read() as session:
                plan = booking.schedule(session)
                day, day_error = _parse_day(form.day.data, plan, _first_session_day(session, scheduling.local_day(plan, now)))
                centre = session.get(Centre, flow["centre_id"]) if flow.get("centre_id") else None
                return _render_slots(session, form, kind, day, day_error, now, "book", centre=centre,
                                     status=409 if isinstance(error, SlotTaken) else 400)
        web_session.pop(FLOW, None)
        flash(_("The appointment is booked."), "success")
        return redirect(url_for("booking.confirmation", reference=reference))
    with db.read() as session:
        plan = booking.schedule(session)
        day, day_error = _parse_day(request.args.get("day") or form.day.data, plan,
                                    _first_session_day(session, scheduling.local_day(plan, now)))
        form.day.data = day.isoformat()
        centre = session.get(Centre, flow["centre_id"]) if flow.get("centre_id") else None
        status = 400 if (day_error or form.is_submitted()) else 200
        return _render_slots(session, form, kind, day, day_error, now, "book", centre=centre, status=status)


@bp.post("/waitlist")
@roles_required(*STAFF)
def join_waitlist():
    flow = _flow()
    form = ActionForm()
    if not flow.get("citizen_id") or not flow.get("kind"):
        return redirect(url_for("booking.citizen"))
    if not form.validate_on_submit():
        abort(400)
    try:
        day = dt.date.fromisoformat(request.form.get("day", ""))
    except ValueError:
        flash(_("The day is not a valid date."), "error")
        return redirect(url_for("booking.slots"))
    try:
        with db_of(current_app).write() as session:
            waitlist.join(session, citizen=session.get(Citizen, flow["citizen_id"]), kind=AppointmentKind(flow["kind"]),
                          day=day, centre=session.get(Centre, flow["centre_id"]) if flow.get("centre_id") else None,
                          location_choice=LocationChoice(flow["place"]) if flow.get("place") else None,
                          language=flow.get("lang", "ar"), actor=_actor())
    except InvalidInput as error:
        flash(say(error), "error")
        return redirect(url_for("booking.slots", day=day.isoformat()))
    web_session.pop(FLOW, None)
    flash(_("The citizen is on the waitlist: the first freed slot of that day will be offered to them by SMS."),
          "success")
    return redirect(url_for("desk.today", date=day.isoformat()))


@bp.post("/waitlist/<int:entry_id>/book")
@roles_required(*STAFF)
def waitlist_book(entry_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with db_of(current_app).write() as session:
            entry = session.get(WaitlistEntry, entry_id) or abort(404)
            reference = waitlist.accept(session, entry, actor=_actor()).reference
    except InvalidInput as error:
        flash(say(error), "error")
        return redirect(url_for("desk.today"))
    flash(_("The appointment is booked."), "success")
    return redirect(url_for("booking.confirmation", reference=reference))


@bp.post("/waitlist/<int:entry_id>/withdraw")
@roles_required(*STAFF)
def waitlist_withdraw(entry_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with db_of(current_app).write() as session:
            entry = session.get(WaitlistEntry, entry_id) or abort(404)
            day = entry.day
            waitlist.withdraw(session, entry, actor=_actor())
    except InvalidInput as error:
        flash(say(error), "error")
        return redirect(url_for("desk.today"))
    flash(_("The waitlist entry is withdrawn."), "success")
    return redirect(url_for("desk.today", date=day.isoformat()))


# ---------------------------------------------------------------- the appointment: print, change

def _render_confirmation(session, appointment, cancel_form=None, status=200):
    plan = booking.schedule(session)
    messages = outbox.for_appointment(session, appointment)
    return render_template(
        "booking/confirmation.html", a=appointment, at=appointment.slot_start.astimezone(scheduling.zone(plan)),
        citizen_name=appointment.citizen.name, centre_name=_name(appointment.centre) if appointment.centre else None,
        sms=messages[-1] if messages else None, cancel_form=cancel_form or CancelForm(), action_form=ActionForm(),
        can_change=appointment.status in booking.ACTIVE), status


@bp.get("/<reference>")
@roles_required(*VIEWERS)
def confirmation(reference: str):
    with db_of(current_app).read() as session:
        return _render_confirmation(session, _appointment_or_404(session, reference))


@bp.post("/<reference>/cancel")
@roles_required(*STAFF)
def cancel(reference: str):
    db = db_of(current_app)
    form = CancelForm()
    if form.validate_on_submit():
        try:
            with db.write() as session:
                appointment = _appointment_or_404(session, reference)
                booking.cancel(session, appointment, form.reason.data or "", actor=_actor())
                outbox.notify(session, booking.schedule(session), appointment, "cancelled",
                              outbox.language_for(session, appointment))
        except InvalidInput as error:
            (form.reason if error.field == "reason" else form.cancel).errors = [say(error)]
        else:
            flash(_("The appointment is cancelled."), "success")
            return redirect(url_for("booking.confirmation", reference=reference))
    with db.read() as session:
        return _render_confirmation(session, _appointment_or_404(session, reference), form, 400)


@bp.route("/<reference>/reschedule", methods=["GET", "POST"])
@roles_required(*STAFF)
def reschedule(reference: str):
    db = db_of(current_app)
    form = SlotForm()
    now = utcnow()
    if request.method == "POST" and form.validate_on_submit():
        try:
            with db.write() as session:
                appointment = _appointment_or_404(session, reference)
                booking.reschedule(session, appointment, _parse_slot(form.slot.data), actor=_actor(), now=now)
                outbox.notify(session, booking.schedule(session), appointment, "rescheduled",
                              outbox.language_for(session, appointment))
        except InvalidInput as error:
            form.slot.errors = [say(error)]
            status = 409 if isinstance(error, SlotTaken) else 400
        else:
            flash(_("The appointment is moved."), "success")
            return redirect(url_for("booking.confirmation", reference=reference))
    else:
        status = 400 if form.is_submitted() else 200
    with db.read() as session:
        appointment = _appointment_or_404(session, reference)
        plan = booking.schedule(session)
        day, day_error = _parse_day(request.args.get("day") or form.day.data, plan,
                                    scheduling.local_day(plan, appointment.slot_start))
        form.day.data = day.isoformat()
        return _render_slots(session, form, appointment.kind, day, day_error, now, "reschedule",
                             appointment=appointment, centre=appointment.centre,
                             status=400 if day_error else status)


@bp.post("/<reference>/check-in")
@roles_required(*STAFF)
def check_in(reference: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    with db_of(current_app).read() as session:
        plan = booking.schedule(session)
        appointment = _appointment_or_404(session, reference)
        day = scheduling.local_day(plan, appointment.slot_start)
    try:
        with db_of(current_app).write() as session:
            booking.check_in(session, _appointment_or_404(session, reference), actor=_actor())
    except InvalidInput as error:
        flash(say(error), "error")
    else:
        flash(_("Checked in."), "success")
    if request.form.get("back") == "in_person":
        return redirect(url_for("booking.in_person", date=day.isoformat()))
    return redirect(url_for("desk.today", date=day.isoformat()))


# ------------------------------------------------------------------ the door list of the day

@bp.get("/in-person")
@roles_required(*VIEWERS)
def in_person():
    with db_of(current_app).read() as session:
        plan = booking.schedule(session)
        zone = scheduling.zone(plan)
        today = dt.datetime.now(zone).date()
        day, day_error = today, None
        if request.args.get("date"):
            try:
                day = dt.date.fromisoformat(request.args["date"])
            except ValueError:
                day_error = _("is not a valid date")
        start = scheduling.in_person_session(plan, day)
        rows = [(a.seat, a.citizen.name, a) for a in booking.on_day(session, day)
                if a.kind is AppointmentKind.IN_PERSON and a.status is not AppointmentStatus.CANCELLED]
        return render_template("booking/in_person.html", day=day, day_error=day_error, rows=rows,
                               start=start.astimezone(zone) if start else None,
                               capacity=plan.in_person_capacity, action_form=ActionForm()), (400 if day_error else 200)

"""IT administration (role: IT admin): governorates, centres and their networks, devices, the
governor's schedule and holidays, routing options; a preview of the rendered Asterisk
configuration as a diff against what is on disk (secrets masked), apply, and Asterisk's health.

The rules live in tawasul.administration; rendering and applying in provisioning. Every change
goes through a CSRF-protected form; a refused input is shown beside its field and nothing is
written. Every change is in the audit log.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload
from wtforms import (BooleanField, DateField, IntegerField, SelectField, SelectMultipleField, StringField,
                     TextAreaField, TimeField)
from wtforms import SelectChoice as choice
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from tawasul import administration, ami, board as board_rules
from tawasul.models import Centre, Device, DeviceKind, GovernorSchedule, Governorate, Holiday, Role
from tawasul.validation import InvalidInput
from tawasul.vault import Vault
from web import db_of, settings_of
from web.auth import roles_required
from web.forms import ActionForm
from web.i18n import LANGUAGE_CHOICES

bp = Blueprint("admin", __name__, url_prefix="/admin")
IT = (Role.IT_ADMIN,)
MASK = "********"
# Lines whose value is a credential: the AMI secret, the FastAGI secret, device passwords and their digests.
SECRET_LINE = re.compile(
    r"(?im)^(\s*(?:secret|password|password_digest|md5_cred|tawasul_agi_secret)\s*=>?\s*)(\S.*)$")
DAYS = [choice(6, _l("Sunday")), choice(0, _l("Monday")), choice(1, _l("Tuesday")), choice(2, _l("Wednesday")),
        choice(3, _l("Thursday")), choice(4, _l("Friday")), choice(5, _l("Saturday"))]


# --------------------------------------------------------------------------- runtime, AMI, diff


def runtime_of(app):
    """The Asterisk runtime of this state folder (tests may set app.extensions["tawasul.runtime"])."""
    runtime = app.extensions.get("tawasul.runtime")
    if runtime is None:
        from provisioning import runtime as asterisk_runtime
        runtime = app.extensions["tawasul.runtime"] = asterisk_runtime.ensure_installed(settings_of(app))
    return runtime


def mask(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every credential line's value, and every known secret anywhere, replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return SECRET_LINE.sub(lambda m: m.group(1) + MASK, text)


def config_diff(runtime, rows, secrets: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """[(file name, unified diff lines)] of what apply would write, against the instance's etc
    folder; secrets masked on both sides. Files without a change are left out."""
    files = runtime.render(rows)
    out = []
    etc = Path(runtime.host_dir) / "etc"
    for name, new in sorted(files.items()):
        try:
            old = (etc / name).read_text(encoding="utf-8")
        except OSError:
            old = ""
        if old == new:
            continue
        lines = list(difflib.unified_diff(mask(old, secrets).splitlines(), mask(new, secrets).splitlines(),
                                          f"on disk/{name}", f"to apply/{name}", lineterm="", n=2))
        out.append((name, lines))
    return out


def _actor() -> str:
    return current_user.username


def _field_error(form, exc: InvalidInput, mapping: dict | None = None) -> None:
    name = (mapping or {}).get(exc.field, exc.field)
    field = getattr(form, name, None)
    message = _(exc.message)  # tawasul.administration's messages, translated in the operations catalog
    if field is None:
        form.form_errors.append(f"{exc.field}: {message}")
    else:
        field.errors = list(field.errors or []) + [message]


# --------------------------------------------------------------------------- overview and health


@bp.get("/")
@roles_required(*IT)
def index():
    app = current_app._get_current_object()
    health, error = None, None
    try:
        health = board_rules.health(settings_of(app))
    except (ami.AmiUnavailable, OSError) as exc:
        error = str(exc)
    uptime = None
    if health and health["started"]:
        uptime = dt.datetime.now().replace(microsecond=0) - health["started"]
    with db_of(app).read() as session:
        counts = {"governorates": session.scalar(sa.select(sa.func.count(Governorate.id))),
                  "centres": session.scalar(sa.select(sa.func.count(Centre.id))),
                  "devices": session.scalar(sa.select(sa.func.count(Device.id)))}
    return render_template("admin/index.html", health=health, ami_error=error, uptime=uptime, counts=counts)


# --------------------------------------------------------------------------- governorates


class GovernorateForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=10)])
    name_ar = StringField(_l("Name (Arabic)"), validators=[DataRequired(), Length(max=120)])
    name_en = StringField(_l("Name (English)"), validators=[DataRequired(), Length(max=120)])


@bp.route("/governorates", methods=["GET", "POST"])
@roles_required(*IT)
def governorates():
    form = GovernorateForm()
    status = 200
    if form.validate_on_submit():
        try:
            with db_of(current_app).write() as session:
                administration.create_governorate(session, _actor(), code_=form.code.data,
                                                  name_ar=form.name_ar.data, name_en=form.name_en.data)
        except InvalidInput as exc:
            _field_error(form, exc)
            status = 400
        else:
            flash(_l("Governorate added."), "success")
            return redirect(url_for(".governorates"))
    elif form.is_submitted():
        status = 400
    with db_of(current_app).read() as session:
        rows = session.scalars(sa.select(Governorate).order_by(Governorate.code)).all()
        listing = [(g.code, g.name_ar, g.name_en, len(g.centres)) for g in rows]
    return render_template("admin/governorates.html", form=form, rows=listing), status


# --------------------------------------------------------------------------- centres


class CentreForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=10)])
    governorate_id = SelectField(_l("Governorate"), coerce=int)
    name_ar = StringField(_l("Name (Arabic)"), validators=[DataRequired(), Length(max=120)])
    name_en = StringField(_l("Name (English)"), validators=[DataRequired(), Length(max=120)])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=300)])
    allowed_networks = TextAreaField(_l("Allowed networks (CIDR, comma-separated)"),
                                     validators=[DataRequired(), Length(max=500)])
    prompt_language = SelectField(_l("First prompt language"), choices=LANGUAGE_CHOICES)
    require_code = BooleanField(_l("Citizens must enter their check-in code"))
    active = BooleanField(_l("Active"), default=True)


def _governorate_choices(session) -> list[choice]:
    return [choice(g.id, f"{g.code} — {g.name_en}") for g in
            session.scalars(sa.select(Governorate).order_by(Governorate.code)).all()]


def _centre_choices(session) -> list[choice]:
    """"—" (no centre), then every centre."""
    return [choice(0, "—")] + [choice(c.id, f"{c.code} — {c.name_en}") for c in
                               session.scalars(sa.select(Centre).order_by(Centre.code)).all()]


@bp.get("/centres")
@roles_required(*IT)
def centres():
    with db_of(current_app).read() as session:
        rows = session.scalars(sa.select(Centre).options(selectinload(Centre.governorate), selectinload(Centre.devices))
                               .order_by(Centre.code)).all()
        listing = [dict(id=c.id, code=c.code, name_ar=c.name_ar, name_en=c.name_en, governorate=c.governorate.code,
                        networks=c.allowed_networks, language=c.prompt_language, require_code=c.require_code,
                        active=c.active, devices=len(c.devices)) for c in rows]
    return render_template("admin/centres.html", rows=listing)


@bp.route("/centres/new", methods=["GET", "POST"], defaults={"centre_id": None})
@bp.route("/centres/<int:centre_id>", methods=["GET", "POST"])
@roles_required(*IT)
def centre(centre_id):
    db = db_of(current_app)
    with db.read() as session:
        existing = session.get(Centre, centre_id) if centre_id else None
        if centre_id and existing is None:
            abort(404)
        choices = _governorate_choices(session)
        form = CentreForm(obj=existing) if existing and request.method == "GET" else CentreForm()
    form.governorate_id.choices = choices
    status = 200
    if form.validate_on_submit():
        try:
            with db.write() as session:
                saved = administration.save_centre(
                    session, _actor(), session.get(Centre, centre_id) if centre_id else None,
                    code_=form.code.data, governorate_id=form.governorate_id.data, name_ar=form.name_ar.data,
                    name_en=form.name_en.data, address=form.address.data or "",
                    allowed_networks=form.allowed_networks.data, prompt_language=form.prompt_language.data,
                    require_code=form.require_code.data, active=form.active.data)
                code = saved.code
        except InvalidInput as exc:
            _field_error(form, exc, {"code": "code"})
            status = 400
        else:
            flash(_l("Centre %(code)s saved. Preview and apply the configuration to put it into effect.", code=code),
                  "success")
            return redirect(url_for(".config"))
    elif form.is_submitted():
        status = 400
    return render_template("admin/centre.html", form=form, centre_id=centre_id), status


# --------------------------------------------------------------------------- devices


class DeviceForm(FlaskForm):
    kind = SelectField(_l("Kind"), choices=[choice(DeviceKind.CENTRE_PHONE.value, _l("Centre video phone")),
                                            choice(DeviceKind.GOVERNOR_DESK.value, _l("Governor's desk")),
                                            choice(DeviceKind.STAFF.value, _l("Staff phone"))])
    centre_id = SelectField(_l("Centre"), coerce=int)
    sip_user = StringField(_l("SIP user"), validators=[DataRequired(), Length(max=40)])
    label = StringField(_l("Label"), validators=[Optional(), Length(max=120)])
    vendor = SelectField(_l("Vendor"), choices=[choice(v) for v in administration.VENDORS])
    model = StringField(_l("Model"), validators=[Optional(), Length(max=40)])
    mac = StringField(_l("MAC address (for provisioned phones)"), validators=[Optional(), Length(max=17)])



@bp.route("/devices", methods=["GET", "POST"])
@roles_required(*IT)
def devices():
    db = db_of(current_app)
    settings = settings_of(current_app)
    form = DeviceForm()
    with db.read() as session:
        form.centre_id.choices = _centre_choices(session)
    status, created = 200, None
    if form.validate_on_submit():
        try:
            with db.write() as session:
                device, _secret = administration.add_device(
                    session, Vault.for_settings(settings), _actor(), kind=form.kind.data, sip_user=form.sip_user.data,
                    centre_id=form.centre_id.data or None, label=form.label.data or "", vendor=form.vendor.data,
                    model=form.model.data or "", mac_=form.mac.data)
                session.flush()
                created = _profile_info(settings, device)
        except InvalidInput as exc:
            _field_error(form, exc, {"mac": "mac", "centre_id": "centre_id"})
            status = 400
        else:
            form = DeviceForm(formdata=None)
            form.centre_id.choices = [choice(0, "—")]
    elif form.is_submitted():
        status = 400
    return _devices_page(form, status, created=created)


def _devices_page(form, status: int, created: dict | None = None, rolled: dict | None = None):
    with db_of(current_app).read() as session:
        rows = session.scalars(sa.select(Device).options(selectinload(Device.centre)).order_by(Device.sip_user)).all()
        listing = [dict(id=d.id, sip_user=d.sip_user, kind=d.kind.value, centre=d.centre.code if d.centre else "",
                        label=d.label, vendor=d.vendor, mac=d.mac or "", enabled=d.enabled,
                        by_mac=bool(d.mac) and d.vendor in PROVISIONED_BY_MAC) for d in rows]
        if created or rolled:
            form.centre_id.choices = _centre_choices(session)
    return render_template("admin/devices.html", form=form, rows=listing, created=created, rolled=rolled,
                           action_form=ActionForm()), status


@bp.post("/devices/<int:device_id>/token")
@roles_required(*IT)
def device_token(device_id):
    """A new provisioning token for one phone (a lost or leaked one): the old token stops working."""
    if not ActionForm().validate_on_submit():
        abort(400)
    with db_of(current_app).write() as session:
        device = session.get(Device, device_id)
        if device is None:
            abort(404)
        administration.roll_provisioning_token(session, _actor(), device)
        session.flush()
        rolled = _profile_info(settings_of(current_app), device)
    return _devices_page(DeviceForm(formdata=None), 200, rolled=rolled)


PROVISIONED_BY_MAC = ("yealink", "grandstream")  # phones that fetch their profile from /provisioning/


def _profile_info(settings, device: Device) -> dict:
    """Where the new phone gets its profile: the provisioning URL and token (phones with a MAC),
    or the CLI export. The SIP secret itself is never shown."""
    from provisioning import phones

    info = {"sip_user": device.sip_user, "vendor": device.vendor, "mac": device.mac,
            "export": f"tawasul phones export {device.sip_user} --format {device.vendor}",
            "token_command": f"tawasul phones token {device.sip_user}"}
    mac = phones.normalize_mac(device.mac)
    if mac and device.vendor in PROVISIONED_BY_MAC:
        info["token"] = phones.provisioning_token(phones.token_secret(settings), device)
        info["file"] = phones.vendor_filename(device.vendor, mac)
        info["url"] = url_for("provisioning.profile", filename=info["file"], _external=True)
    return info


@bp.post("/devices/<int:device_id>/enabled")
@roles_required(*IT)
def device_enabled(device_id):
    if not ActionForm().validate_on_submit():
        abort(400)
    with db_of(current_app).write() as session:
        device = session.get(Device, device_id)
        if device is None:
            abort(404)
        administration.set_device_enabled(session, _actor(), device, request.form.get("enabled") == "1")
    flash(_l("Device updated. Apply the configuration to put it into effect."), "success")
    return redirect(url_for(".devices"))


# --------------------------------------------------------------------------- schedule and holidays


class MultiCheckbox(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ScheduleForm(FlaskForm):
    days = MultiCheckbox(_l("Session days"), coerce=int, choices=DAYS)
    video_start = TimeField(_l("Video sessions from"), validators=[InputRequired()])
    video_end = TimeField(_l("Video sessions until"), validators=[InputRequired()])
    slot_minutes = IntegerField(_l("Slot length (minutes)"), validators=[InputRequired()])
    buffer_minutes = IntegerField(_l("Buffer between slots (minutes)"), validators=[InputRequired()])
    in_person_start = TimeField(_l("In-person session starts"), validators=[InputRequired()])
    in_person_capacity = IntegerField(_l("In-person capacity"), validators=[InputRequired()])


class HolidayForm(FlaskForm):
    day = DateField(_l("Day"), validators=[InputRequired()])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=120)])


def _schedule(session) -> GovernorSchedule:
    schedule = session.scalars(sa.select(GovernorSchedule).order_by(GovernorSchedule.id)).first()
    if schedule is None:
        abort(404)
    return schedule


@bp.route("/schedule", methods=["GET", "POST"])
@roles_required(*IT)
def schedule():
    db = db_of(current_app)
    with db.read() as session:
        current = _schedule(session)
        form = ScheduleForm(obj=current, days=sorted(current.weekdays)) if request.method == "GET" else ScheduleForm()
        holidays = [(h.id, h.day, h.name) for h in sorted(current.holidays, key=lambda h: h.day)]
    status = 200
    if form.validate_on_submit():
        try:
            with db.write() as session:
                administration.save_schedule(
                    session, _actor(), _schedule(session), days=form.days.data, video_start=form.video_start.data,
                    video_end=form.video_end.data, slot_minutes=form.slot_minutes.data,
                    buffer_minutes=form.buffer_minutes.data, in_person_start=form.in_person_start.data,
                    in_person_capacity=form.in_person_capacity.data)
        except InvalidInput as exc:
            _field_error(form, exc)
            status = 400
        else:
            flash(_l("Schedule saved."), "success")
            return redirect(url_for(".schedule"))
    elif form.is_submitted():
        status = 400
    return render_template("admin/schedule.html", form=form, holiday_form=HolidayForm(formdata=None),
                           holidays=holidays, action_form=ActionForm()), status


@bp.post("/schedule/holidays")
@roles_required(*IT)
def add_holiday():
    db = db_of(current_app)
    form = HolidayForm()
    if form.validate_on_submit():
        try:
            with db.write() as session:
                administration.add_holiday(session, _actor(), _schedule(session), form.day.data, form.name.data or "")
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            flash(_l("Holiday added."), "success")
            return redirect(url_for(".schedule"))
    with db.read() as session:
        current = _schedule(session)
        holidays = [(h.id, h.day, h.name) for h in sorted(current.holidays, key=lambda h: h.day)]
        sched_form = ScheduleForm(formdata=None, obj=current, days=sorted(current.weekdays))
    return render_template("admin/schedule.html", form=sched_form, holiday_form=form, holidays=holidays,
                           action_form=ActionForm()), 400


@bp.post("/schedule/holidays/<int:holiday_id>/delete")
@roles_required(*IT)
def remove_holiday(holiday_id):
    if not ActionForm().validate_on_submit():
        abort(400)
    with db_of(current_app).write() as session:
        holiday = session.get(Holiday, holiday_id)
        if holiday is None:
            abort(404)
        administration.remove_holiday(session, _actor(), holiday)
    flash(_l("Holiday removed."), "success")
    return redirect(url_for(".schedule"))


# --------------------------------------------------------------------------- routing options


class RoutingForm(FlaskForm):
    prompt_language = SelectField(_l("First prompt language"), choices=LANGUAGE_CHOICES)
    require_code = BooleanField(_l("Require check-in code"))


@bp.route("/routing", methods=["GET", "POST"])
@roles_required(*IT)
def routing():
    db = db_of(current_app)
    status = 200
    if request.method == "POST":
        form = RoutingForm()
        centre_id = request.form.get("centre_id", type=int)
        if not form.validate_on_submit() or centre_id is None:
            status = 400
            flash(_l("The change was refused."), "error")
        else:
            with db.write() as session:
                centre = session.get(Centre, centre_id)
                if centre is None:
                    abort(404)
                administration.save_centre(
                    session, _actor(), centre, code_=centre.code, governorate_id=centre.governorate_id,
                    name_ar=centre.name_ar, name_en=centre.name_en, address=centre.address,
                    allowed_networks=centre.allowed_networks, prompt_language=form.prompt_language.data,
                    require_code=form.require_code.data, active=centre.active)
            flash(_l("Routing options saved."), "success")
            return redirect(url_for(".routing"))
    settings = settings_of(current_app)
    with db.read() as session:
        rows = [(c.id, c.code, c.name_en, RoutingForm(formdata=None, prompt_language=c.prompt_language,
                                                      require_code=c.require_code))
                for c in session.scalars(sa.select(Centre).order_by(Centre.code)).all()]
    return render_template("admin/routing.html", rows=rows, early=settings.early_minutes,
                           late=settings.late_minutes), status


# --------------------------------------------------------------------------- configuration


@bp.get("/config")
@roles_required(*IT)
def config():
    from provisioning.apply import load
    from provisioning.render import RenderError

    app = current_app._get_current_object()
    settings = settings_of(app)
    diff, errors = [], []
    try:
        runtime = runtime_of(app)
        diff = config_diff(runtime, load(settings, db_of(app)), (*runtime.ami_secrets().values(), runtime.agi_secret))
    except RenderError as exc:
        errors = list(exc.errors)
    except Exception as exc:  # noqa: BLE001 - the runtime missing, a key that cannot decrypt: say so
        errors = [f"{type(exc).__name__}: {exc}"]
    return render_template("admin/config.html", diff=diff, errors=errors, action_form=ActionForm(), result=None)


@bp.post("/config/apply")
@roles_required(*IT)
def apply_config():
    from provisioning.apply import apply

    if not ActionForm().validate_on_submit():
        abort(400)
    app = current_app._get_current_object()
    try:
        runtime = runtime_of(app)
    except Exception as exc:  # noqa: BLE001
        flash(f"{type(exc).__name__}: {exc}", "error")
        return redirect(url_for(".config"))
    result = apply(settings_of(app), db_of(app), runtime, _actor(), sender=app.extensions.get("tawasul.ami_sender"))
    return render_template("admin/config.html", diff=[], errors=[], action_form=ActionForm(),
                           result=result), (200 if result.ok else 502)

"""IT's page of accounts (role: IT admin): list, add, reset a password, disable or enable, change the
role; and the recent failed sign-ins. A new or reset account gets a generated password, shown here
once (never put in a cookie or a redirect), and its owner must choose their own at the next sign-in.
The rules live in tawasul.users; each change is in the audit log and ends the account's sessions."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms import SelectChoice as choice
from wtforms.validators import DataRequired, Length

from provisioning import console_endpoint
from tawasul import users
from tawasul.models import Role, User
from tawasul.validation import InvalidInput
from web import db_of, settings_of
from web.auth import roles_required
from web.forms import ActionForm

bp = Blueprint("admin_users", __name__)
IT = (Role.IT_ADMIN,)
ROLE_NAMES = {Role.STAFF: _l("Reception staff"), Role.GOVERNOR_OFFICE: _l("Governor's office"),
              Role.IT_ADMIN: _l("IT administrator")}


def _role_choices():
    return [choice(role.value, name) for role, name in ROLE_NAMES.items()]


class AddUserForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=60)])
    full_name = StringField(_l("Full name"), validators=[Length(max=200)])
    role = SelectField(_l("Role"), choices=_role_choices)


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=_role_choices)



def _page(form=None, handed_over=None, status=200):
    with db_of(current_app).read() as db:
        rows = [dict(id=u.id, username=u.username, full_name=u.full_name, role=u.role, active=u.active,
                     must_change=u.must_change_password, last_login_at=u.last_login_at)
                for u in users.listing(db)]
        failures = users.recent_failures(db)
    return render_template("admin/users.html", rows=rows, failures=failures, form=form or AddUserForm(),
                           action_form=ActionForm(), role_form=RoleForm(), role_names=ROLE_NAMES,
                           handed_over=handed_over, me=current_user.id), status, {"Cache-Control": "no-store"}


@bp.route("/admin/users", methods=["GET", "POST"])
@roles_required(*IT)
def index():
    form = AddUserForm()
    if not form.validate_on_submit():
        return _page(form, status=400 if form.is_submitted() else 200)
    try:
        with db_of(current_app).write() as db:
            user, password = users.create_user(db, form.username.data, Role(form.role.data), form.full_name.data,
                                               actor=current_user.username, must_change=True)
            name = user.username
    except InvalidInput as exc:
        field = getattr(form, exc.field, form.username)
        field.errors = list(field.errors or []) + [_(exc.message)]
        return _page(form, status=400)
    return _page(handed_over={"username": name, "password": password, "new": True})


def _change(user_id: int, change, ends_sessions: bool = True):
    """Apply `change(db, user)` to another user's account; a refusal is flashed."""
    if not ActionForm().validate_on_submit():
        abort(400)
    if user_id == current_user.id:
        flash(_("This is your own account: use “Change my password”, or ask another IT administrator."), "error")
        return None
    try:
        with db_of(current_app).write() as db:
            user = db.get(User, user_id)
            if user is None:
                abort(404)
            name, was_governor_office = user.username, user.role is Role.GOVERNOR_OFFICE
            result = change(db, user)
    except InvalidInput as exc:
        flash(f"{name}: {_(exc.message)}", "error")
        return None
    if was_governor_office and ends_sessions:  # as at sign-out: the console's video ends with the sessions
        console_endpoint.revoke(settings_of(current_app))
    return result


@bp.post("/admin/users/<int:user_id>/password")
@roles_required(*IT)
def reset_password(user_id):
    done = _change(user_id, lambda db, user: (user.username, users.set_password(
        db, user, None, actor=current_user.username, must_change=True)))
    if done is None:
        return redirect(url_for(".index"))
    name, password = done
    return _page(handed_over={"username": name, "password": password, "new": False})


@bp.post("/admin/users/<int:user_id>/active")
@roles_required(*IT)
def set_active(user_id):
    active = request.form.get("active") == "1"
    if _change(user_id, lambda db, user: users.set_active(db, user, active, current_user.username) or True,
               ends_sessions=not active):
        flash(_l("Account enabled.") if active else _l("Account disabled; its sessions have ended."), "success")
    return redirect(url_for(".index"))


@bp.post("/admin/users/<int:user_id>/role")
@roles_required(*IT)
def set_role(user_id):
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    role = Role(form.role.data)
    if _change(user_id, lambda db, user: users.set_role(db, user, role, current_user.username) or True):
        flash(_l("Role changed; the account's sessions have ended."), "success")
    return redirect(url_for(".index"))

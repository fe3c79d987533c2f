"""Sign-in for staff, the governor's office and IT; roles checked on every route."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from provisioning import console_endpoint
from tawasul import users
from tawasul.models import Role, User
from web import db_of, limiter, settings_of

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please sign in to continue.")
login_manager.session_protection = "strong"


@dataclass(frozen=True)
class SignedIn:
    """What a request knows of its user: no password hash, no ORM object."""

    id: int
    username: str
    full_name: str
    role: Role
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return str(self.id)


@login_manager.user_loader
def load_user(user_id: str) -> SignedIn | None:
    if not user_id.isdigit():
        return None
    with db_of(current_app).read() as session:
        user = session.get(User, int(user_id))
        if user is None or not user.active:
            return None
        return SignedIn(user.id, user.username, user.full_name, user.role)


def roles_required(*roles: Role):
    """Signed in, and one of these roles; otherwise the sign-in page or 403."""
    def decorator(view):
        @functools.wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        wrapper.roles = roles  # read by the test that walks every route
        return wrapper
    return decorator


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=60)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str | None:
    return target if target and target.startswith("/") and not target.startswith("//") else None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        with db_of(current_app).write() as session:
            user = users.authenticate(session, form.username.data, form.password.data)
            signed_in = user and SignedIn(user.id, user.username, user.full_name, user.role)
        if signed_in:
            login_user(signed_in)
            return redirect(_safe_next(request.args.get("next")) or url_for("home.index"))
        flash(_l("Wrong username or password, or the account is locked for a while."), "error")
        status = 401
    elif form.is_submitted():
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    if current_user.role is Role.GOVERNOR_OFFICE:  # the console's video credentials end with the login
        console_endpoint.revoke(settings_of(current_app))
    logout_user()
    return redirect(url_for("home.index"))


def is_role(*roles: Role) -> bool:
    return current_user.is_authenticated and current_user.role in roles


def init_app(app) -> None:
    login_manager.init_app(app)
    app.jinja_env.globals.update(is_role=is_role, Role=Role)
    app.register_blueprint(bp)


"""Sign-in for staff, the governor's office and IT; roles checked on every route.

A session holds the user's session version and the time of its last request: it ends when the
version changes (sign-out anywhere, a new password, disabled, another role) or after
`session_idle_minutes` without a request. A user who must choose a new password can reach that page
and sign-out only."""
from __future__ import annotations

import functools
import string
import time
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from provisioning import console_endpoint
from tawasul import users
from tawasul.models import Role, User
from tawasul.validation import InvalidInput
from web import db_of, limiter, settings_of, sign_in_limit

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
    must_change_password: bool = False
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return str(self.id)


# Keys of the session cookie, beside Flask-Login's own.
VERSION, SEEN = "_version", "_seen"
SEEN_STEP = 60  # seconds: the last request's time is rewritten at most this often


def _signed_in(user: User) -> SignedIn:
    return SignedIn(user.id, user.username, user.full_name, user.role, user.must_change_password)


def _forget_user() -> None:
    for key in ("_user_id", "_fresh", "_id", VERSION, SEEN):
        session.pop(key, None)


@login_manager.user_loader
def load_user(user_id: str) -> SignedIn | None:
    """The session's user, unless it has been idle too long or its version is no longer the user's."""
    now = int(time.time())
    seen = session.get(SEEN)
    idle = settings_of(current_app).session_idle_minutes * 60
    if not user_id.isdigit() or not isinstance(seen, int) or now - seen > idle:
        _forget_user()
        return None
    with db_of(current_app).read() as db:
        user = db.get(User, int(user_id))
        if user is None or not user.active or user.session_version != session.get(VERSION):
            _forget_user()
            return None
        signed_in = _signed_in(user)
    if now - seen >= SEEN_STEP:
        session[SEEN] = now
    return signed_in


def _start_session(signed_in: SignedIn, version: int) -> None:
    login_user(signed_in)
    session[VERSION], session[SEEN] = version, int(time.time())


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
    r"""`target` if it is a path on this site, else None. Browsers drop tabs and newlines and read a
    backslash as a slash, so "/\t/evil.example" or "/\\evil.example" would leave the site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(c in string.whitespace or unicodedata.category(c)[0] in "CZ" for c in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def login():
    form = LoginForm()
    status = 200
    headers = {}
    if form.validate_on_submit():
        with db_of(current_app).write() as db:
            attempt = users.authenticate(db, form.username.data, form.password.data, request.remote_addr or "")
            user = attempt.user
            signed_in, version = (_signed_in(user), user.session_version) if user else (None, None)
        if signed_in:
            _start_session(signed_in, version)
            if signed_in.must_change_password:
                return redirect(url_for("auth.change_password"))
            return redirect(_safe_next(request.args.get("next")) or url_for("home.index"))
        if attempt.retry_after:
            flash(_("Too many failed sign-ins. Try again in %(seconds)s seconds.", seconds=attempt.retry_after),
                  "error")
            status, headers = 429, {"Retry-After": str(attempt.retry_after)}
        else:
            flash(_l("Wrong username or password."), "error")
            status = 401
    elif form.is_submitted():
        status = 400
    return render_template("auth/login.html", form=form), status, headers


@bp.post("/logout")
@login_required
def logout():
    if current_user.role is Role.GOVERNOR_OFFICE:  # the console's video credentials end with the login
        console_endpoint.revoke(settings_of(current_app))
    with db_of(current_app).write() as db:  # and so does every copy of this session
        user = db.get(User, current_user.id)
        if user is not None:
            users.end_sessions(user)
    logout_user()
    _forget_user()
    return redirect(url_for("home.index"))


class PasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=200)])
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=200)])
    repeat = PasswordField(_l("New password again"), validators=[DataRequired(), Length(max=200)])


@bp.route("/account/password", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
@login_required
def change_password():
    """Any signed-in user chooses a new password; their other sessions end."""
    form = PasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            with db_of(current_app).write() as db:
                user = db.get(User, current_user.id)
                users.change_own_password(db, user, form.current_password.data, form.password.data,
                                          form.repeat.data)
                version = user.session_version
        except InvalidInput as exc:
            field = getattr(form, exc.field)
            field.errors = list(field.errors or []) + [_(exc.message)]
            status = 400
        else:
            session[VERSION] = version  # this session goes on; every other one has ended
            flash(_l("Your password has been changed."), "success")
            return redirect(url_for("home.index"))
    elif form.is_submitted():
        status = 400
    return render_template("auth/password.html", form=form, forced=current_user.must_change_password,
                           min_length=users.MIN_LENGTH), status


# Where a user who must choose a new password may go meanwhile.
OPEN_BEFORE_NEW_PASSWORD = {"auth.change_password", "auth.logout", "static"}


def _new_password_first():
    if request.endpoint in OPEN_BEFORE_NEW_PASSWORD or request.blueprint == "api":
        return None
    if current_user.is_authenticated and current_user.must_change_password:
        return redirect(url_for("auth.change_password"))
    return None


def is_role(*roles: Role) -> bool:
    return current_user.is_authenticated and current_user.role in roles


def init_app(app) -> None:
    login_manager.init_app(app)
    app.before_request(_new_password_first)
    app.jinja_env.globals.update(is_role=is_role, Role=Role)
    app.register_blueprint(bp)


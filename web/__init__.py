"""The Tawasul web app: `create_app(test_config=None)`, one blueprint per feature."""
from __future__ import annotations

import os

from flask import Flask, current_app, render_template
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

from tawasul import settings as settings_module
from tawasul.db import Database

from web import ratelimits  # noqa: E402  (registers the shared counters' storage with `limits`)

limiter = Limiter(key_func=ratelimits.client_key, default_limits=[])
csrf = CSRFProtect()

CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


def create_app(test_config: dict | None = None) -> Flask:
    settings = (test_config or {}).get("TAWASUL_SETTINGS") or settings_module.load()
    settings.require_production_secret()
    secret_key = settings.secret_key
    if secret_key == settings_module.DEFAULT_SECRET_KEY:  # demo mode: a random key kept in the state folder
        secret_key = settings_module.generated_secret(settings, "web-secret-key", 32)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.demo,
        REMEMBER_COOKIE_SECURE=not settings.demo,
        MAX_CONTENT_LENGTH=7 * 1024 * 1024,  # three 2 MB attachments and the form around them
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        RATELIMIT_STORAGE_URI=f"{ratelimits.SCHEME}://",  # counters shared by every worker
        RATELIMIT_STORAGE_OPTIONS={"url": ratelimits.storage_url(settings)},
    )
    app.config.update(test_config or {})
    if settings.web_proxies:  # the client's own address for rate limits and logs, https for cookies
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.web_proxies, x_proto=settings.web_proxies)
    app.extensions["tawasul.settings"] = settings
    # A pooled connection kept for each request thread (`tawasul web serve --threads`).
    app.extensions["tawasul.db"] = Database(settings.db_url, pool_size=int(os.environ.get("TAWASUL_WEB_THREADS", "5")))

    from web import auth, desk, home, i18n, provisioning
    i18n.init_app(app, settings.timezone, settings.path("translations"))
    limiter.init_app(app)
    csrf.init_app(app)
    auth.init_app(app)
    app.register_blueprint(home.bp)
    app.register_blueprint(desk.bp)
    app.register_blueprint(provisioning.bp)  # phones fetch their profiles (web/provisioning.py)
    from web import booking
    app.register_blueprint(booking.bp)  # staff booking (web/booking.py)
    from web import followups, tickets, track
    app.register_blueprint(tickets.bp)
    app.register_blueprint(followups.bp)
    app.register_blueprint(track.bp)
    from web import api
    app.register_blueprint(api.bp)  # the JSON API for integrations (web/api.py)
    from web import admin, board, reports
    app.register_blueprint(board.bp)  # centre status board (web/board.py)
    app.register_blueprint(admin.bp)  # IT administration (web/admin.py)
    app.register_blueprint(reports.bp)  # reports and CSV export (web/reports.py)
    from web import console; app.register_blueprint(console.bp)  # the governor's console (web/console.py)
    from web import admin_users; app.register_blueprint(admin_users.bp)  # IT's accounts page (web/admin_users.py)
    from web import metrics; app.register_blueprint(metrics.bp)  # /metrics for Prometheus (web/metrics.py)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Permissions-Policy", "geolocation=(), microphone=(), camera=()")
        if not settings.demo:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    def error_page(error, code):
        if api.is_api_request():  # the API answers JSON, even for routing, size and rate-limit errors
            return api.http_error(code)
        return render_template("error.html", code=code), code

    for code in (400, 403, 404, 413, 429, 500):
        app.register_error_handler(code, lambda error, code=code: error_page(error, code))
    for code in (401, 405):  # only the API words these; the web keeps werkzeug's pages
        app.register_error_handler(code, lambda error, code=code: (
            api.http_error(code) if api.is_api_request() else error))

    return app


def public_limit() -> str:
    """The rate limit of the public complaint form and of public tracking (setting public_rate_limit)."""
    return settings_of(current_app).public_rate_limit


def sign_in_limit() -> str:
    """Sign-in and password-change attempts per client address (setting sign_in_rate_limit)."""
    return settings_of(current_app).sign_in_rate_limit


def reference_limit() -> str:
    """Public tracking's limit on one reference number, whoever asks (setting tracking_reference_limit)."""
    return settings_of(current_app).tracking_reference_limit


def settings_of(app: Flask) -> settings_module.Settings:
    return app.extensions["tawasul.settings"]


def db_of(app: Flask) -> Database:
    return app.extensions["tawasul.db"]

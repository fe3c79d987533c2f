"""The Tawasul web app: `create_app(test_config=None)`, one blueprint per feature."""
from __future__ import annotations

from flask import Flask

from tawasul import settings as settings_module
from tawasul.db import Database


def create_app(test_config: dict | None = None) -> Flask:
    settings = settings_module.load()
    if test_config and "TAWASUL_SETTINGS" in test_config:
        settings = test_config["TAWASUL_SETTINGS"]
    settings.require_production_secret()

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.demo,
        MAX_CONTENT_LENGTH=5 * 1024 * 1024,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["tawasul.settings"] = settings
    app.extensions["tawasul.db"] = Database(settings.db_url)

    from web import home
    app.register_blueprint(home.bp)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app


def settings_of(app: Flask) -> settings_module.Settings:
    return app.extensions["tawasul.settings"]


def db_of(app: Flask) -> Database:
    return app.extensions["tawasul.db"]

"""Arabic first, English on request: the language choice, right-to-left, Hijri and Gregorian dates.

Translations live in one catalog per feature, `web/translations/<feature>/ar/LC_MESSAGES/messages.po`
(English is the source language); Flask-Babel merges them. Catalogs are compiled when they change.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, request
from flask_babel import Babel, format_date, format_datetime
from hijridate import Gregorian
from wtforms import SelectChoice

LANGUAGES = ("ar", "en")
# A choice of language in a form, each named in its own language.
LANGUAGE_CHOICES = [SelectChoice("ar", "العربية"), SelectChoice("en", "English")]
COOKIE = "lang"
TRANSLATIONS = Path(__file__).with_name("translations")


def compile_catalogs(root: Path = TRANSLATIONS, cache: Path | None = None) -> list[Path]:
    """The catalog folders. In a checkout, first compiles every .po whose .mo is missing or older:
    beside the .po where that folder is writable, else under `cache` (e.g. <state_dir>/translations:
    the service user may not write the checkout). An installed wheel holds only the .mo files,
    compiled when it was built (setup.py), so nothing is written where the package is installed."""
    sources = sorted(root.glob("*/*/LC_MESSAGES/messages.po"))
    if not sources:
        return sorted({mo_path.parents[2] for mo_path in root.glob("*/*/LC_MESSAGES/messages.mo")})
    folders = set()
    for po_path in sources:
        mo_path = po_path.with_suffix(".mo")
        if cache is not None and not os.access(po_path.parent, os.W_OK):
            mo_path = Path(cache) / po_path.relative_to(root).with_suffix(".mo")
            mo_path.parent.mkdir(parents=True, exist_ok=True)
        if not mo_path.exists() or mo_path.stat().st_mtime < po_path.stat().st_mtime:
            with open(po_path, "rb") as po_file:
                catalog = read_po(po_file)
            # Each gunicorn worker may compile at once on a fresh checkout: a temporary file of
            # its own, then an atomic rename, so no worker ever reads or replaces another's half.
            tmp = mo_path.with_name(f".{mo_path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as mo_file:
                write_mo(mo_file, catalog)
            os.replace(tmp, mo_path)
        folders.add(mo_path.parents[2])
    return sorted(folders)


def current_language() -> str:
    return getattr(g, "lang", "ar")


def _choose_language() -> None:
    asked = request.args.get("lang")
    g.lang_changed = asked in LANGUAGES and asked != request.cookies.get(COOKIE)
    g.lang = asked if asked in LANGUAGES else (
        request.cookies.get(COOKIE) if request.cookies.get(COOKIE) in LANGUAGES else "ar")


def _remember_language(response):
    if getattr(g, "lang_changed", False):
        response.set_cookie(COOKIE, g.lang, max_age=365 * 86400, samesite="Lax", httponly=True,
                            secure=request.is_secure)
    return response


def hijri(day: dt.date | dt.datetime, lang: str | None = None) -> str:
    """e.g. ٢٦ جمادى الآخرة ١٤٤٨ هـ / 26 Jumada al-Akhirah 1448 AH."""
    lang = lang or current_language()
    if isinstance(day, dt.datetime):
        day = day.date()
    h = Gregorian(day.year, day.month, day.day).to_hijri()
    return f"{h.day} {h.month_name(lang)} {h.year} {h.notation(lang)}"


def init_app(app: Flask, timezone: str, cache: Path | None = None) -> None:
    folders = compile_catalogs(cache=cache)
    Babel(app, default_locale="ar", default_timezone=timezone,
          default_translation_directories=";".join(str(f) for f in folders) or str(TRANSLATIONS),
          locale_selector=current_language)
    app.before_request(_choose_language)
    app.after_request(_remember_language)
    zone = ZoneInfo(timezone)

    @app.context_processor
    def language_context():
        lang = current_language()
        return {"lang": lang, "text_dir": "rtl" if lang == "ar" else "ltr",
                "other_lang": "en" if lang == "ar" else "ar"}

    app.jinja_env.filters["hijri"] = hijri
    app.jinja_env.filters["local_datetime"] = lambda m: format_datetime(m.astimezone(zone), "medium")
    app.jinja_env.filters["local_date"] = lambda d: format_date(d, "long")

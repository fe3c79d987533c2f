"""The public front page and the health check."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, render_template
from sqlalchemy.exc import SQLAlchemyError

from tawasul.models import Centre
from web import db_of

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    with db_of(current_app).read() as session:
        centres = session.scalars(sa.select(Centre).where(Centre.active).order_by(Centre.id)).all()
    return render_template("home/index.html", centres=centres)


@bp.get("/healthz")
def healthz():
    try:
        with db_of(current_app).read() as session:
            session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        return jsonify(status="error", database="unavailable"), 503
    return jsonify(status="ok", database="ok")

"""The reception desk: the day's appointments."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, render_template, request

from tawasul import booking, scheduling
from tawasul.models import Role
from web import db_of
from web.auth import roles_required

bp = Blueprint("desk", __name__, url_prefix="/desk")


@bp.get("/")
@roles_required(Role.STAFF, Role.GOVERNOR_OFFICE)
def today():
    with db_of(current_app).read() as session:
        plan = booking.schedule(session)
        zone = scheduling.zone(plan)
        try:
            day = dt.date.fromisoformat(request.args["date"]) if "date" in request.args \
                else dt.datetime.now(zone).date()
        except ValueError:
            abort(400)
        appointments = booking.on_day(session, day)
        rows = [(a.slot_start.astimezone(zone), a, a.citizen.name, a.centre) for a in appointments]
    return render_template("desk/today.html", day=day, rows=rows)

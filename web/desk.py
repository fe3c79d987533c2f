"""The reception desk: the day's appointments (with check-in) and the day's waitlist offers."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, render_template, request

from tawasul import booking, scheduling, waitlist
from tawasul.models import Role
from web import db_of
from web.auth import roles_required
from web.forms import ActionForm

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
        waiting = [(e, e.citizen.name, e.centre, e.offered_slot.astimezone(zone) if e.offered_slot else None)
                   for e in waitlist.on_day(session, day)]
    return render_template("desk/today.html", day=day, rows=rows, waiting=waiting, action_form=ActionForm(),
                           code_limit=booking.WRONG_CODE_LIMIT)

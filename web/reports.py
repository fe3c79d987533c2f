"""Reports (governor's office and IT): sessions held per day and week, no-shows, average session
duration, complaints by category and status, overdue follow-ups; charts drawn in the browser
with Chart.js (vendored in web/static/vendor/chartjs, MIT) from /reports/data.json, and a CSV
export of each report. Staff are not given reports: they are management information; the
desk already shows staff the day's appointments.
"""
from __future__ import annotations

import csv
import datetime as dt
import io

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from tawasul import booking, reports, scheduling
from tawasul.models import Role
from web import db_of
from web.auth import roles_required

bp = Blueprint("reports", __name__, url_prefix="/reports")
VIEWERS = (Role.GOVERNOR_OFFICE, Role.IT_ADMIN)
DEFAULT_DAYS = 28
MAX_DAYS = 366


def _range(zone) -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(zone).date()
    try:
        end = dt.date.fromisoformat(request.args["end"]) if request.args.get("end") else today
        start = dt.date.fromisoformat(request.args["start"]) if request.args.get("start") \
            else end - dt.timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        abort(400)
    if start > end or (end - start).days >= MAX_DAYS:
        abort(400)
    return start, end


def _gather() -> dict:
    with db_of(current_app).read() as session:
        zone = scheduling.zone(booking.schedule(session))
        start, end = _range(zone)
        days = reports.sessions_by_day(session, start, end, zone)
        return {
            "start": start, "end": end, "days": days, "weeks": reports.sessions_by_week(days),
            "average": reports.average_duration(days),
            "complaints": reports.complaints_by_category(session, start, end, zone),
            "overdue": reports.overdue_followups(session, dt.datetime.now(zone).date()),
        }


@bp.get("/")
@roles_required(*VIEWERS)
def index():
    return render_template("reports/index.html", **_gather())


@bp.get("/data.json")
@roles_required(*VIEWERS)
def data():
    r = _gather()
    return jsonify({
        "days": [{"day": d.day.isoformat(), "held": d.held, "no_shows": d.no_shows,
                  "average_seconds": d.average_seconds} for d in r["days"]],
        "weeks": [{"week": w.week, "held": w.held, "no_shows": w.no_shows} for w in r["weeks"]],
        "complaints": [{"category": c, "status": s, "count": n} for c, s, n in r["complaints"]],
        "average_seconds": r["average"],
        "overdue": len(r["overdue"]),
    })


REPORTS = {
    "days": (["day", "sessions_held", "no_shows", "answered_calls", "average_seconds"],
             lambda r: [(d.day.isoformat(), d.held, d.no_shows, d.calls, d.average_seconds if d.average_seconds is not None else "")
                        for d in r["days"]]),
    "weeks": (["week", "week_start", "sessions_held", "no_shows"],
              lambda r: [(w.week, w.start.isoformat(), w.held, w.no_shows) for w in r["weeks"]]),
    "complaints": (["category", "status", "count"], lambda r: r["complaints"]),
    "overdue": (["reference", "kind", "status", "due_date", "days_late", "department"],
                lambda r: [(o.reference, o.kind, o.status, o.due_date.isoformat(), o.days_late, o.department)
                           for o in r["overdue"]]),
}


def _cell(value):
    """Neutralise spreadsheet formulas in text cells (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@bp.get("/<name>.csv")
@roles_required(*VIEWERS)
def export(name: str):
    if name not in REPORTS:
        abort(404)
    header, rows = REPORTS[name]
    r = _gather()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows(r):
        writer.writerow([_cell(v) for v in row])
    filename = f"tawasul-{name}-{r['start'].isoformat()}-{r['end'].isoformat()}.csv"
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})

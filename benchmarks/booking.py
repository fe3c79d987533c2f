"""Booking throughput: the booking service (validation, slot rules, unique index, audit) against
the floor of inserting the same appointment rows directly, on SQLite (WAL), in one run."""
from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from tawasul import booking, demo, scheduling
from tawasul.db import Database, upgrade
from tawasul.models import Appointment, AppointmentKind, GovernorSchedule
from tawasul.settings import load
from tawasul.validation import make_national_id

DAYS = 60


def _database(folder: Path):
    settings = load({"state_dir": folder, "demo": True}, environ={})
    folder.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    db = Database(settings.db_url)
    with db.write() as session:
        demo.seed(session, settings)
        plan = session.scalars(sa.select(GovernorSchedule)).one()
        plan.session_days = "0,1,2,3,4,5,6"
        plan.video_start, plan.video_end = dt.time(0, 0), dt.time(23, 59)
    return db


def _slots(db, now):
    with db.read() as session:
        plan = booking.schedule(session)
        first = scheduling.local_day(plan, now) + dt.timedelta(days=1)
        return [s for d in range(DAYS) for s in scheduling.video_slots(plan, first + dt.timedelta(days=d))]


def main() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        service_db, floor_db = _database(Path(tmp, "a")), _database(Path(tmp, "b"))
        slots = _slots(service_db, now)[:1000]
        with service_db.write() as session:
            citizen = booking.find_or_register_citizen(session, make_national_id("1", "10000000"), "مواطن", "0501234567")
            citizen_id = citizen.id
            centre_id = booking.centre_by_code(session, "BDR").id

        service_times = []
        for slot in slots:
            started = time.perf_counter()
            with service_db.write() as session:
                booking.book(session, citizen=session.get(type(citizen), citizen_id), kind=AppointmentKind.VIDEO,
                             at=slot, centre=booking.centre_by_code(session, "BDR"), actor="bench", now=now)
            service_times.append(time.perf_counter() - started)

        floor_times = []
        with floor_db.write() as session:
            session.add(type(citizen)(id=citizen_id, national_id=make_national_id("1", "10000000"), name="x",
                                      mobile="+966501234567"))
        for n, slot in enumerate(slots):
            started = time.perf_counter()
            with floor_db.write() as session:
                session.execute(sa.insert(Appointment).values(
                    reference=f"A-{n:012d}", checkin_code="000000", citizen_id=citizen_id, kind="video",
                    slot_start=slot, slot_minutes=15, seat=1, centre_id=centre_id, status="booked",
                    subject="", cancel_reason="", created_at=now, updated_at=now))
            floor_times.append(time.perf_counter() - started)

    def p(values, q):
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    service_mean, floor_mean = statistics.mean(service_times) * 1000, statistics.mean(floor_times) * 1000
    print(f"bookings: {len(slots)} over {DAYS} days, SQLite (WAL)")
    print(f"  booking service   mean {service_mean:6.2f} ms  p95 {p(service_times, 95):6.2f} ms  "
          f"{1000 / service_mean:7.0f} bookings/s")
    print(f"  raw insert floor  mean {floor_mean:6.2f} ms  p95 {p(floor_times, 95):6.2f} ms  "
          f"{1000 / floor_mean:7.0f} inserts/s")
    print(f"  ratio service/floor (mean): {service_mean / floor_mean:.1f}x")


if __name__ == "__main__":
    main()

"""The web under load: with 10,000 appointments and 100,000 tickets in the database, gunicorn with
2 workers (`tawasul web serve --workers 2`), 50 concurrent clients: the 95th-percentile latency of
the slot search (GET /api/v1/slots), the booking POST (POST /api/v1/appointments with a staff token,
each on a distinct free slot, so every one should succeed: refusals are counted and printed) and
public tracking (POST /api/v1/track, a right pair each time), beside the same clients fetching a
static file (/static/tawasul.css) as the floor. On SQLite (WAL) and on a throwaway PostgreSQL.
Target: p95 under 100 ms each.

Public tracking keeps its rate limit (10 a minute per address, per worker): each client sends from
its own loopback address (127.0.0.2 ... 127.0.0.51) and no more than 10 tracking requests, so no
request is refused for the limit.

`--quick` (BENCH_QUICK=1): fewer requests per scenario (the same database); under a minute.
"""
from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from tawasul import api_tokens, demo, scheduling
from tawasul.db import Database, upgrade
from tawasul.models import (
    Appointment, AuditEntry, Centre, Citizen, Department, GovernorSchedule, Role, Ticket, TicketEvent,
)
from tawasul.references import ALPHABET
from tawasul.settings import load
from tawasul.validation import make_national_id
from tests.live import free_port, stop, tawasul, wait_http

APPOINTMENTS = 10_000
TICKETS = 100_000
CITIZENS = 2_000
CLIENTS = 50
WORKERS = 2
TARGET_MS = 100.0
TRACK_PER_CLIENT = 10  # the public limit per address and minute
CHUNK = 5_000


def _quick() -> bool:
    return os.environ.get("BENCH_QUICK") == "1"


# ------------------------------------------------------------------------------------ the data

def _raw(value, sqlite: bool):
    """A value as the column types store it (UTC naive times; SQLite's text forms)."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds") if sqlite else value
    if isinstance(value, dt.date):
        return value.isoformat() if sqlite else value
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _insert(connection, table: str, rows: list[dict]) -> None:
    """Bulk insert through SQLAlchemy Core's driver-level executemany (no per-row type processing)."""
    sqlite = connection.dialect.name == "sqlite"
    columns = list(rows[0])
    marks = ", ".join(["?" if sqlite else "%s"] * len(columns))
    connection.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                               [tuple(_raw(row[c], sqlite) for c in columns) for row in rows])


def _reference(rng: random.Random, prefix: str) -> str:
    """The shape of tawasul.references.new_reference, from a seeded generator (fast, repeatable)."""
    body = "".join(rng.choices(ALPHABET, k=12))
    return f"{prefix}-{body[0:4]}-{body[4:8]}-{body[8:12]}"


def _build(url: str, state: Path) -> dict:
    """Schema, demo region, sessions every day all day, 10,000 appointments (two slots in three
    held) and 100,000 tickets with their history and audit entries. Returns what the load needs."""
    settings = load({"state_dir": state, "demo": True, "database_url": url}, environ={})
    state.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    db = Database(url)
    rng = random.Random(5)
    now = dt.datetime.now(dt.timezone.utc)
    with db.write() as session:
        demo.seed(session, settings)
        plan = session.scalars(sa.select(GovernorSchedule)).one()
        plan.session_days = "0,1,2,3,4,5,6"
        plan.video_start, plan.video_end = dt.time(0, 0), dt.time(23, 59)
        _row, token = api_tokens.create(session, "bench", Role.STAFF, actor="bench")
    with db.read() as session:
        plan = session.scalars(sa.select(GovernorSchedule)).one()
        first = scheduling.local_day(plan, now) + dt.timedelta(days=1)
        centres = session.scalars(sa.select(Centre.id)).all()
        departments = session.scalars(sa.select(Department.id)).all()
        held, free, days, day = [], [], [], first
        while len(held) < APPOINTMENTS:
            for n, slot in enumerate(scheduling.video_slots(plan, day)):
                (free if n % 3 == 2 else held).append(slot)
            days.append(day)
            day += dt.timedelta(days=1)
        held = held[:APPOINTMENTS]

    citizens = [{"id": n, "national_id": make_national_id("1", f"{n:08d}"), "name": f"مواطن {n}",
                 "mobile": f"+9665{n:08d}", "home_governorate_id": None, "created_at": now}
                for n in range(1, CITIZENS + 1)]
    appointments, audit, tracked = [], [], []
    for n, slot in enumerate(held, start=1):
        citizen = citizens[n % CITIZENS]
        reference = _reference(rng, "A")
        appointments.append({
            "id": n, "reference": reference, "checkin_code": f"{rng.randrange(10**6):06d}", "citizen_id": citizen["id"],
            "kind": "video", "slot_start": slot, "slot_minutes": 15, "seat": 1, "centre_id": rng.choice(centres),
            "location_choice": "nearest_centre", "subject": "", "status": "booked", "cancel_reason": "",
            "created_at": now, "updated_at": now})
        audit.append({"at": now, "actor": "bench", "action": "appointment.book", "entity": "appointment",
                      "entity_id": str(n), "detail": {"kind": "video", "seat": 1}})
        if n % 20 == 0:
            tracked.append((reference, citizen["national_id"]))
    tickets, events = [], []
    for n in range(1, TICKETS + 1):
        reference = _reference(rng, "C" if n % 4 else "S")
        mobile = f"+9665{(n % 90_000_000) + 10_000_000:08d}"
        tickets.append({
            "id": n, "reference": reference, "kind": "complaint" if n % 4 else "suggestion", "status": "received",
            "subject": f"طلب رقم {n}", "body": "نص الطلب " * 20, "category": "other", "citizen_id": None,
            "appointment_id": None, "department_id": rng.choice(departments),
            "due_date": now.date() + dt.timedelta(days=14), "contact_national_id": None, "contact_mobile": mobile,
            "created_at": now, "updated_at": now})
        events.append({"ticket_id": n, "at": now, "from_status": "", "to_status": "received", "note": "",
                       "actor": "public"})
        audit.append({"at": now, "actor": "public", "action": "ticket.open", "entity": "ticket",
                      "entity_id": str(n), "detail": {"kind": "complaint"}})
        if n % 200 == 0:
            tracked.append((reference, mobile))
    with db.engine.begin() as connection:  # the driver's executemany: 220,000 rows in seconds
        for model, rows in ((Citizen, citizens), (Appointment, appointments), (Ticket, tickets),
                            (TicketEvent, events), (AuditEntry, audit)):
            for start in range(0, len(rows), CHUNK):
                _insert(connection, model.__tablename__, rows[start:start + CHUNK])
        if db.engine.dialect.name == "postgresql":  # the rows above carry their ids
            for table in ("citizen", "appointment", "ticket"):
                connection.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                           f"(SELECT max(id) FROM {table}))"))
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    db.dispose()
    rng.shuffle(free)
    rng.shuffle(tracked)
    return {"token": token, "days": days[: len(days) - 1], "free": free, "tracked": tracked}


# ------------------------------------------------------------------------------------ the load

def _request(port: int, source: str, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        connection.close()
    return status, time.perf_counter() - started


def _run(port: int, plans: list[list[tuple]]) -> tuple[list[float], Counter, float]:
    """Each of the clients sends its own list of requests, one after the other, all starting together."""
    latencies, statuses, lock = [], Counter(), threading.Lock()
    barrier = threading.Barrier(len(plans) + 1)

    def client(index: int, plan: list[tuple]):
        source = f"127.0.0.{index + 2}"
        mine, codes = [], Counter()
        barrier.wait()
        for method, path, body, headers in plan:
            status, seconds = _request(port, source, method, path, body, headers)
            mine.append(seconds)
            codes[status] += 1
        with lock:
            latencies.extend(mine)
            statuses.update(codes)

    threads = [threading.Thread(target=client, args=(i, plan)) for i, plan in enumerate(plans)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, statuses, time.perf_counter() - started


def _spread(requests: list[tuple]) -> list[list[tuple]]:
    return [requests[i::CLIENTS] for i in range(CLIENTS)]


def _scenarios(data: dict, quick: bool) -> list[tuple[str, list[list[tuple]], int]]:
    """(name, per-client requests, the status that counts as success)."""
    size = 400 if quick else 2_000
    bookings = 300 if quick else 1_000
    track_each = 4 if quick else TRACK_PER_CLIENT
    auth = {"Authorization": f"Bearer {data['token']}"}
    json_auth = {**auth, "Content-Type": "application/json"}
    floor = [("GET", "/static/tawasul.css", None, {})] * size
    days = data["days"]
    slots = [("GET", f"/api/v1/slots?date={days[i % len(days)].isoformat()}", None, auth) for i in range(size)]
    book = []
    for n, slot in enumerate(data["free"][:bookings]):
        body = {"national_id": make_national_id("2", f"{n:08d}"), "name": f"مراجع {n}",
                "mobile": f"+9665{n + 50_000_000:08d}", "kind": "video", "centre": "BDR",
                "at": slot.isoformat(), "language": "ar"}
        book.append(("POST", "/api/v1/appointments", json.dumps(body).encode(), json_auth))
    track_plans = []
    pairs = data["tracked"]
    for client in range(CLIENTS):
        plan = []
        for k in range(track_each):
            reference, identity = pairs[(client * track_each + k) % len(pairs)]
            plan.append(("POST", "/api/v1/track", json.dumps({"reference": reference, "identity": identity}).encode(),
                         {"Content-Type": "application/json"}))
        track_plans.append(plan)
    return [("static page (floor)", _spread(floor), 200), ("slot search", _spread(slots), 200),
            ("booking POST", _spread(book), 201), ("public tracking", track_plans, 200)]


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def _serve(state: Path, url: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {"TAWASUL_STATE_DIR": str(state), "TAWASUL_DEMO": "1", "TAWASUL_WEB_PORT": str(port),
           "TAWASUL_DATABASE_URL": url, "TAWASUL_CONFIG": str(state / "none.toml")}
    process = tawasul(["web", "serve", "--workers", str(WORKERS)], env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return process, port


def _bench(label: str, url: str, state: Path, quick: bool) -> list[tuple]:
    started = time.perf_counter()
    data = _build(url, state)
    loaded = time.perf_counter() - started
    process, port = _serve(state, url)
    rows = []
    try:
        # Warm both workers (imports, connection pools, the first queries) outside the figures.
        warm = [("GET", "/static/tawasul.css", None, {}),
                ("GET", f"/api/v1/slots?date={data['days'][0].isoformat()}", None,
                 {"Authorization": f"Bearer {data['token']}"})] * 10
        _run(port, [warm[i::4] for i in range(4)])
        for name, plans, ok in _scenarios(data, quick):
            latencies, statuses, seconds = _run(port, plans)
            rows.append((name, len(latencies), statuses, ok, _p(latencies, 50), _p(latencies, 95),
                         max(latencies) * 1000, len(latencies) / seconds))
    finally:
        stop(process)
    print(f"{label}: {APPOINTMENTS:,} appointments, {TICKETS:,} tickets (loaded in {loaded:.1f} s); "
          f"`tawasul web serve --workers {WORKERS}`, {CLIENTS} concurrent clients; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    floor_p95 = rows[0][5]
    print(f"  {'scenario':22} {'requests':>8} {'ok':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'req/s':>7} {'p95/floor':>9}  target p95 < {TARGET_MS:.0f} ms")
    for name, count, statuses, ok, p50, p95, top, rate in rows:
        refused = {code: n for code, n in statuses.items() if code != ok}
        verdict = "floor" if name.startswith("static") else ("PASS" if p95 < TARGET_MS and not refused else "FAIL")
        print(f"  {name:22} {count:8d} {statuses[ok]:6d} {p50:8.1f} {p95:8.1f} {top:8.1f} {rate:7.0f} "
              f"{p95 / floor_p95:8.1f}x  {verdict}" + (f"  (other statuses: {refused})" if refused else ""))
    return rows


def main() -> None:
    quick = _quick()
    from tests.postgres_fixture import PostgresServer

    with tempfile.TemporaryDirectory(prefix="tawasul-bench-web-") as tmp:
        sqlite_state = Path(tmp, "sqlite")
        _bench("SQLite (WAL)", f"sqlite:///{sqlite_state / 'tawasul.db'}", sqlite_state, quick)
        server = PostgresServer()
        try:
            server.start()
            _bench("PostgreSQL", server.new_database(), Path(tmp, "postgres"), quick)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

"""route_call's statement, run on the driver's cursor, reads what SQLAlchemy's execute reads."""
from __future__ import annotations

import datetime as dt

from agi.route_call import _CALL
from tests.unit.test_agi_route_call import book
from tests.unit.test_agi_server import SUNDAY, at


def rows_both_ways(db, endpoint: str, now: dt.datetime):
    params = {"endpoint": endpoint, "since": now - dt.timedelta(days=1), "until": now + dt.timedelta(days=1),
              "closes": now - dt.timedelta(minutes=10), "opens": now + dt.timedelta(minutes=5)}
    with db.engine.connect() as connection:
        return _CALL.all(connection, params), connection.execute(_CALL.statement, params).all()


def test_the_prepared_statement_gives_the_rows_and_types_sqlalchemy_gives(demo_db):
    book(demo_db, at(SUNDAY, 9, 0), centre="BDR", n=1)
    book(demo_db, at(SUNDAY, 11, 0), centre="BDR", n=2)
    now = at(SUNDAY, 9, 5)
    for endpoint in ("centre-bdr-1", "centre-med-1", "no-such-phone"):
        prepared, executed = rows_both_ways(demo_db, endpoint, now)
        assert [tuple(row) for row in prepared] == [tuple(row) for row in executed]

    booked, _ = rows_both_ways(demo_db, "centre-bdr-1", now)
    assert [row.slot_start for row in booked] == [at(SUNDAY, 9, 0), at(SUNDAY, 11, 0)]  # aware UTC, as stored
    assert [row.due_and_busy for row in booked] == [False, None]  # due now with the governor free; not due yet

"""Review finding 10: public tracking does the same work for a real and an unknown reference; its
limits count an IPv6 client by its /64 and each reference whoever asks; every worker shares them."""
import dataclasses

import pytest
import sqlalchemy as sa

from tawasul import booking, tracking
from tawasul.models import AppointmentKind
from tests.conftest import csrf_token
from tests.unit.test_web_tickets import NATIONAL_ID, db, file_one
from tests.unit.test_web_track import OTHER_ID, track


def statements_run(database, work) -> list[str]:
    seen = []
    listener = lambda _conn, _cursor, statement, *_args: seen.append(statement)  # noqa: E731
    sa.event.listen(database.engine, "before_cursor_execute", listener)
    try:
        work()
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", listener)
    return seen


def test_a_real_reference_costs_what_an_unknown_one_costs(web_app, client):
    ticket_reference = file_one(client)
    with db(web_app).write() as session:
        citizen = booking.find_or_register_citizen(session, NATIONAL_ID, "سالم الجهني", "0551234567")
        import datetime as dt
        appointment_reference = booking.book(
            session, citizen=citizen, kind=AppointmentKind.VIDEO, at=dt.datetime(2030, 1, 6, 6, tzinfo=dt.timezone.utc),
            centre=booking.centre_by_code(session, "YNB"), actor="test").reference

    def asked(reference):
        def work():
            with db(web_app).read() as session:
                assert tracking.lookup(session, reference, OTHER_ID) is None
        return statements_run(db(web_app), work)

    for real in (ticket_reference, appointment_reference):
        unknown = real[:2] + ("0000-0000-0000" if real[2:] != "0000-0000-0000" else "1111-1111-1111")
        assert asked(real) == asked(unknown), real


def test_an_ipv6_client_is_counted_by_its_64(web_app):
    web_app.extensions["tawasul.settings"] = dataclasses.replace(
        web_app.extensions["tawasul.settings"], public_rate_limit="3 per minute")
    client = web_app.test_client()
    token = csrf_token(client, "/track/")
    statuses = [client.post("/track/", data={"csrf_token": token, "reference": "X", "identity": "Y"},
                            environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{n:x}"}).status_code for n in range(1, 6)]
    assert statuses == [404, 404, 404, 429, 429]  # five addresses of one /64: one client
    other = client.post("/track/", data={"csrf_token": token, "reference": "X", "identity": "Y"},
                        environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"})
    assert other.status_code == 404  # the next /64 is someone else


def test_one_reference_is_limited_whoever_asks(web_app, client):
    reference = file_one(client)
    web_app.extensions["tawasul.settings"] = dataclasses.replace(
        web_app.extensions["tawasul.settings"], tracking_reference_limit="4 per hour")
    answers = []
    for n in range(6):  # six addresses, each well inside its own limit
        asker = web_app.test_client()
        answers.append(track(asker, reference, OTHER_ID).status_code if n % 2 else asker.post(
            "/api/v1/track", json={"reference": reference, "identity": OTHER_ID},
            environ_base={"REMOTE_ADDR": f"192.0.2.{n}"}).status_code)
    assert answers == [404, 404, 404, 404, 429, 429]  # web and API count together
    other = file_one(web_app.test_client())
    assert track(web_app.test_client(), other, NATIONAL_ID).status_code == 200  # another reference is free


WORKER = """
import dataclasses, sys
from pathlib import Path
from tawasul.settings import Settings
from web import create_app
settings = dataclasses.replace(Settings(), state_dir=Path(sys.argv[1]), demo=True, public_rate_limit="6 per minute")
client = create_app({"TAWASUL_SETTINGS": settings, "TESTING": True}).test_client()
codes = [client.post("/api/v1/track", json={"reference": "A-0000-0000-0000", "identity": "1"}).status_code
         for _ in range(5)]
print(" ".join(map(str, codes)))
"""


def test_web_workers_share_their_rate_limits(web_app):
    """Two web worker processes on one state folder: one client gets its limit once, not once a worker."""
    import subprocess
    import sys

    state_dir = web_app.extensions["tawasul.settings"].state_dir
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(state_dir)], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    codes = [code for worker in workers for code in worker.communicate(timeout=60)[0].split()]
    assert sorted(codes) == ["404"] * 6 + ["429"] * 4

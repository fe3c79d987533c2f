"""SQLite writers in several processes take turns (tawasul.db.WriterTurns): none is refused, none
is lost, and a writer stuck behind another gives up with a clear error instead of hanging; a lone
read (read_one) leaves no autocommit behind for the next write."""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
import sqlalchemy as sa

from tawasul.db import Database, WriterTurns, upgrade
from tawasul.models import AuditEntry


def _write_many(url: str, actor: str, count: int) -> None:
    db = Database(url)
    for n in range(count):
        with db.write() as session:
            session.add(AuditEntry(actor=actor, action="test.write", entity="", entity_id=str(n), detail={}))
    db.dispose()


def test_writers_in_four_processes_all_land(tmp_path):
    url = f"sqlite:///{tmp_path / 'tawasul.db'}"
    upgrade(url)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(url, f"p{n}", 50)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    db = Database(url)
    with db.read() as session:
        rows = session.execute(sa.select(AuditEntry.actor, sa.func.count()).group_by(AuditEntry.actor)).all()
    assert dict(rows) == {"p0": 50, "p1": 50, "p2": 50, "p3": 50}
    assert (tmp_path / "tawasul.db-writers.lock").exists()


def test_a_writer_waits_for_the_one_before_it(tmp_path):
    turns = WriterTurns(str(tmp_path / "x.lock"))
    order = []

    def second():
        with turns.turn():
            order.append("second")

    with turns.turn():
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]


def test_a_writer_held_up_too_long_gets_a_clear_error(tmp_path, monkeypatch):
    path = str(tmp_path / "x.lock")
    holder, waiter = WriterTurns(path), WriterTurns(path)  # as two processes: separate lock files opened
    monkeypatch.setattr(WriterTurns, "TIMEOUT", 0.3)
    with holder.turn():
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="busy"):
            with waiter.turn():
                pass
        assert time.monotonic() - started < 2
    with waiter.turn():  # free again once the holder is done
        pass


@pytest.mark.parametrize("pool_size, reopened", [(None, True), (16, False)])
def test_a_pool_sized_for_the_threads_keeps_its_connections(tmp_path, pool_size, reopened):
    """The web sizes each worker's pool by its request threads: 16 requests at once, twice, open 16
    connections once; with SQLAlchemy's default pool (5 kept) the second round opens most of them again."""
    url = f"sqlite:///{tmp_path / 'tawasul.db'}"
    upgrade(url)
    # (The default pool lets 15 connections out at most: allow more, or the 16th request would wait.)
    db = Database(url, pool_size=pool_size) if pool_size else Database(url, max_overflow=20)
    opened = []
    sa.event.listen(db.engine, "connect", lambda *_: opened.append(1))
    both_rounds = threading.Barrier(16)

    def request():
        with db.read() as session:
            session.execute(sa.select(AuditEntry.id)).all()
            both_rounds.wait(30)  # all 16 hold a connection at once

    for _round in range(2):
        threads = [threading.Thread(target=request) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert (len(opened) > 16) is reopened
    assert len(opened) >= 16
    db.dispose()


def test_a_lone_read_finds_a_token_and_leaves_later_writes_all_or_nothing(db):
    """read_one (no transaction on PostgreSQL) must not hand its autocommit on to the next write."""
    from tawasul import api_tokens
    from tawasul.models import ApiToken, Role

    with db.write() as session:
        _row, token = api_tokens.create(session, "desk-app", Role.STAFF, actor="test")
    for _ in range(3):
        with db.read_one() as connection:
            assert api_tokens.authenticate(connection, token).name == "desk-app"
        with pytest.raises(RuntimeError), db.write() as session:
            session.add(ApiToken(name="half-done", role=Role.STAFF, token_hash="0" * 64))
            session.flush()  # on the server, inside the transaction
            raise RuntimeError("the rest of this change failed")
    with db.read() as session:
        assert session.scalars(sa.select(ApiToken.name)).all() == ["desk-app"]


@pytest.mark.postgres
def test_a_restarted_postgresql_is_survived(monkeypatch):
    """A pooled connection idle for a while is pinged, so the first request after a restart works. One
    in steady use is not: its next statement fails (the request in flight would have failed anyway), the
    pool then drops every old connection, and the next request works."""
    import tawasul.db
    from tests.postgres_fixture import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        db = Database(server.new_database())
        with db.read() as session:
            assert session.scalar(sa.text("SELECT 1")) == 1
        monkeypatch.setattr(tawasul.db, "PING_WHEN_IDLE", 0.0)  # idle: pinged
        server.restart()
        with db.read() as session:
            assert session.scalar(sa.text("SELECT 1")) == 1
        monkeypatch.setattr(tawasul.db, "PING_WHEN_IDLE", 3600.0)  # in steady use: not pinged
        server.restart()
        with pytest.raises(sa.exc.OperationalError), db.read() as session:
            session.scalar(sa.text("SELECT 1"))
        with db.write() as session:
            assert session.scalar(sa.text("SELECT 2")) == 2
        db.dispose()
    finally:
        server.stop()

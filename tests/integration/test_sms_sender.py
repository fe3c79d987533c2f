"""`tawasul sms send` as real processes, two at once, against a real HTTP server playing a gateway that
deduplicates by idempotency key; both killed (SIGKILL) mid-request and restarted. Every message
reaches the gateway once per key, none is lost, and only a message whose request was cut is ever
requested twice. On SQLite and PostgreSQL."""
import os
import signal
import subprocess
import sys

import sqlalchemy as sa

from tawasul import outbox
from tawasul.db import Database, upgrade
from tawasul.models import OutboxMessage
from tests.live import stop, tawasul, wait_for
from tests.sms_gateway import FakeGateway

KEYS = [f"m{n:02d}" for n in range(30)]


def statuses(db):
    with db.read() as session:
        return {m.key: (m.status, m.attempts, m.last_error) for m in session.scalars(sa.select(OutboxMessage))}


def test_killed_and_restarted_senders_deliver_each_message_once(db_url, settings, tmp_path):
    upgrade(db_url)
    db = Database(db_url)
    with db.write() as session:
        for key in KEYS:
            outbox.queue(session, "+966551234567", f"تواصل: رسالة {key}", key=key)
    with FakeGateway(hang_seconds=3) as fake:
        fake.plan = {"m03": ["500", "500"], "m07": ["hang"], "m11": ["hold"], "m15": ["400"]}
        env = {"TAWASUL_STATE_DIR": str(settings.state_dir), "TAWASUL_DATABASE_URL": db_url, "TAWASUL_DEMO": "1",
               "TAWASUL_SMS_GATEWAY_URL": fake.url, "TAWASUL_SMS_TIMEOUT": "1", "TAWASUL_SMS_LEASE_SECONDS": "6",
               "TAWASUL_SMS_RETRY_SECONDS": "0.2", "TAWASUL_SMS_RETRY_MAX_SECONDS": "1",
               "TAWASUL_SMS_POLL_SECONDS": "0.2", "TAWASUL_SMS_MAX_ATTEMPTS": "5", "TAWASUL_SMS_REMINDERS": ""}
        logs = []

        def start(name):
            log = open(tmp_path / f"{name}.log", "wb")
            logs.append(log)
            return tawasul(["sms", "send"], env, stdout=log, stderr=subprocess.STDOUT)

        senders = [start("a"), start("b")]
        try:
            wait_for(fake.held.is_set, 30, "the held message's request")
            for process in senders:  # both die at once, one of them in the middle of m11's request
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            # Claimed and committed before its request: not queued, not sent, its attempt counted.
            assert statuses(db)["m11"][:2] == ("sending", 1)
            fake.release.set()  # the gateway got it after all
            senders = [start("c"), start("d")]
            wait_for(lambda: fake.attempts("m11") == 2, 30, "m11 sent again after its lease")
            os.killpg(senders[0].pid, signal.SIGKILL)  # one more, wherever it is
            senders[0].wait()
            senders[0] = start("e")
            wait_for(lambda: all(s in ("sent", "failed") for s, _, _ in statuses(db).values()), 60,
                     "every message sent or failed")
            wait_for(lambda: b"SMS sender:" in (tmp_path / "e.log").read_bytes(), 30, "the last sender running")
            assert [stop(p) for p in senders] == [0, 0]  # SIGTERM: they finish and exit cleanly
        finally:
            for process in senders:
                stop(process)
            for log in logs:
                log.close()

        final = statuses(db)
        assert set(fake.delivered) == set(KEYS) - {"m15"}  # none lost, none but the refused one
        assert {k for k, (s, _, _) in final.items() if s == "sent"} == set(KEYS) - {"m15"}
        assert final["m15"][:2] == ("failed", 1) and "HTTP 400" in final["m15"][2]
        assert final["m11"][:2] == ("sent", 2) and fake.attempts("m03") == 3
        # Exactly once: only a request that was cut (the sender killed, the gateway slower than the
        # timeout) was ever repeated, and the gateway deduplicated it by its key.
        assert set(fake.repeats) <= {"m07", "m11"} and "m11" in fake.repeats
        assert {k for k in KEYS if fake.attempts(k) > 1} <= {"m03", "m07", "m11"}
        assert all(r["headers"]["Idempotency-Key"] == r["key"] for r in fake.requests)

        with db.write() as session:
            outbox.queue(session, "+966551234567", "later", key="later")
        done = subprocess.run([sys.executable, "-m", "tawasul", "sms", "send", "--once"],
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "1 message(s) tried" in done.stdout and "later" in fake.delivered
    db.dispose()

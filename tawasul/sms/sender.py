"""The SMS sender: claims what is due in the outbox, sends it through the gateway, records the outcome.

A message's life: `queued` -> `sending` (claimed) -> `sent`, or back to `queued` with a later
`due_at` (a retry), or `failed` (for good; shown on the staff/IT board with its reason).

Claiming. Before any HTTP request, the sender claims the message in a transaction of its own,
committed before the request starts: one conditional UPDATE sets status `sending`, counts the
attempt, writes the sender's claim token and a lease (`due_at` = now + `sms_lease_seconds`),
WHERE the row is still claimable (queued and due, or sending with its lease run out). On
PostgreSQL a second sender's UPDATE of the same row waits for the first to commit, then finds
the WHERE false; on SQLite writers take turns. Only the sender whose UPDATE changed the row
sends it, so two senders never both send a message. The outcome is written with the same
condition plus the claim token: a sender whose lease another has taken over changes nothing.

A sender killed mid-request. Its message stays `sending` with the attempt counted: nobody
resends it blindly while the request may still be running. When the lease runs out (it is at
least twice the HTTP timeout plus a second, see gateway.Gateway), any sender claims it again and
sends it with the same idempotency key. The killed request may or may not have reached the
gateway: a gateway that deduplicates on the key (the custom template's Idempotency-Key header,
a gateway refusing a repeated CorrelationID) then delivers it exactly once; its "already have it"
answer (409, Unifonic ER-09, Msegat 1061) counts as sent. A gateway that neither takes a key nor
refuses repeats may deliver such a message twice: at-least-once is the most any sender can do
there. A message whose last allowed attempt was cut this way is marked failed ("delivery
unknown") rather than sent again. The HTTP timeout bounds each of connect, write and read, not
their sum: a gateway trickling its answer past the lease may see the message again, with the same
key. Senders on several hosts need synchronised clocks (leases are compared to each one's clock).

Retries: timeouts, refused connections, 5xx, 408 and 429 are retried after
`sms_retry_seconds` * 2^(attempt-1), times a random 0.5-1.5 (jitter, so many retries do not
come back at once), at most `sms_retry_max_seconds`; after `sms_max_attempts` attempts the message
has failed. Bad credentials, a bad number or a refused request fail at once.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import threading

import sqlalchemy as sa

from tawasul.db import Database
from tawasul.models import OutboxMessage, utcnow
from tawasul.settings import Settings, SettingsError
from tawasul.sms import reminders
from tawasul.sms.gateway import FAILED, RETRY, SENT, Gateway, Message, Outcome, client

log = logging.getLogger("tawasul.sms")
T = OutboxMessage.__table__
BATCH = 20


def backoff(attempt: int, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Seconds to wait before the next try, after `attempt` tries (1, 2, ...)."""
    rand = rand or random
    return min(cap, base * 2 ** (max(attempt, 1) - 1)) * rand.uniform(0.5, 1.5)


def _claimable(now: dt.datetime, max_attempts: int):
    """Queued and due, or being sent by a sender whose lease has run out (not on its last attempt)."""
    return sa.or_(sa.and_(T.c.status == "queued", T.c.due_at <= now),
                  sa.and_(T.c.status == "sending", T.c.due_at <= now, T.c.attempts < max_attempts))


class Sender:
    def __init__(self, settings: Settings, db: Database, gateway: Gateway):
        if settings.sms_poll_seconds <= 0:
            raise SettingsError("sms_poll_seconds: expected more than 0")
        reminders.offsets(settings.sms_reminders)  # refused now rather than at the first poll
        self.settings, self.db, self.gateway = settings, db, gateway
        self.token = secrets.token_hex(8)
        self.lease = dt.timedelta(seconds=settings.sms_lease_seconds)

    # --- the outbox ---

    def give_up_cut_attempts(self, now: dt.datetime) -> int:
        """A message whose last allowed attempt was cut (its sender died) fails: it may have gone."""
        cut = sa.and_(T.c.status == "sending", T.c.due_at <= now, T.c.attempts >= self.settings.sms_max_attempts)
        with self.db.read() as session:  # most polls find none: no write then
            if session.execute(sa.select(T.c.id).where(cut).limit(1)).first() is None:
                return 0
        with self.db.write() as session:
            return session.execute(T.update().where(cut).values(status="failed", failed_at=now, claim="",
                     last_error="delivery unknown: the sender stopped during the last attempt")).rowcount

    def claim(self, now: dt.datetime) -> tuple[int, int, Message] | None:
        """The next due message, claimed for this sender and committed: (id, attempts so far with this
        one, the message); None when nothing is due."""
        claimable = _claimable(now, self.settings.sms_max_attempts)
        with self.db.read() as session:
            candidates = session.execute(sa.select(T.c.id).where(claimable).order_by(T.c.due_at, T.c.id)
                                         .limit(BATCH)).scalars().all()
        for message_id in candidates:
            with self.db.write() as session:
                claimed = session.execute(T.update().where(T.c.id == message_id, claimable).values(
                    status="sending", claim=self.token, attempts=T.c.attempts + 1, due_at=now + self.lease,
                )).rowcount
                if claimed:
                    row = session.execute(sa.select(T.c.to, T.c.body, T.c.key, T.c.language, T.c.attempts)
                                          .where(T.c.id == message_id)).one()
                    return message_id, row.attempts, Message(row.to, row.body, row.key, row.language)
        return None

    def finish(self, message_id: int, attempts: int, outcome: Outcome, now: dt.datetime) -> bool:
        """Record the outcome, only if this sender still holds the claim."""
        result, reason = outcome.result, outcome.reason[:300]
        if result == RETRY and attempts >= self.settings.sms_max_attempts:
            result, reason = FAILED, f"{attempts} attempts, the last: {reason}"[:300]
        if result == SENT:
            values = dict(status="sent", sent_at=now, provider_id=outcome.provider_id[:64], last_error="")
        elif result == FAILED:
            values = dict(status="failed", failed_at=now, last_error=reason)
        else:
            wait = backoff(attempts, self.settings.sms_retry_seconds, self.settings.sms_retry_max_seconds)
            values = dict(status="queued", due_at=now + dt.timedelta(seconds=wait), last_error=reason)
        with self.db.write() as session:
            done = session.execute(T.update().where(T.c.id == message_id, T.c.status == "sending",
                                                    T.c.claim == self.token).values(claim="", **values)).rowcount
        if not done:
            log.warning("message %s: the claim was taken over before its outcome (%s) was recorded", message_id, result)
        return bool(done)

    # --- the loop ---

    def send_due(self, stop: threading.Event | None = None, pause_on_retry: bool = False) -> int:
        """Send every message due now, one at a time; returns how many were tried. `pause_on_retry`:
        end the round at the first answer to retry (the gateway is likely down or busy: the next poll
        goes on, rather than every due message hitting it at once)."""
        tried = 0
        now = utcnow()
        reminders.queue_due(self.db, self.settings, now)
        self.give_up_cut_attempts(now)
        with client(self.settings) as http:
            while not (stop and stop.is_set()):
                claimed = self.claim(utcnow())
                if claimed is None:
                    break
                message_id, attempts, message = claimed
                outcome = self.gateway.send(http, message)
                self.finish(message_id, attempts, outcome, utcnow())
                log.info("message %s (key %s, attempt %s): %s %s", message_id, message.key, attempts,
                         outcome.result, outcome.reason)
                tried += 1
                if pause_on_retry and outcome.result == RETRY:
                    break
        return tried

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.send_due(stop, pause_on_retry=True)
            except sa.exc.OperationalError as exc:  # the database went away: try again at the next poll
                log.error("database unavailable: %s", exc.orig)
            except Exception:  # noqa: BLE001  one bad poll must not stop the sender (nor `tawasul up`)
                log.exception("the poll failed; trying again at the next one")
            stop.wait(self.settings.sms_poll_seconds)


def retry_failed(db: Database, ids: list[int] | None = None) -> int:
    """Queue failed messages again (all, or those with these ids), with their keys and a fresh count of
    attempts: after IT has fixed what made them fail (credentials, balance, the sender name)."""
    where = [T.c.status == "failed"] + ([T.c.id.in_(ids)] if ids else [])
    with db.write() as session:
        return session.execute(T.update().where(*where).values(
            status="queued", attempts=0, due_at=utcnow(), claim="", failed_at=None)).rowcount


def counts(db: Database) -> dict[str, int]:
    with db.read() as session:
        return dict(session.execute(sa.select(T.c.status, sa.func.count()).group_by(T.c.status)).all())

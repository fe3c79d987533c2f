"""The call watcher against a real Asterisk: the dialplan's reports become one call record per call,
and calls that ended while nobody watched are closed when the watcher (re)connects."""
import asyncio
import datetime as dt


import pytest
import sqlalchemy as sa

from tawasul import calls
from tawasul.ami import AmiClient, run_actions
from tawasul.callwatch import CallWatcher
from tawasul.models import Call
from tests.live import run_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def watching(provisioned, scenario):
    client = AmiClient.for_settings(provisioned.settings, provisioned.runtime.ami_login("watch"))
    watcher = CallWatcher(provisioned.db, client)
    stop = asyncio.Event()
    await client.connect()
    task = asyncio.create_task(watcher.run(stop))
    try:
        return await scenario(client)
    finally:
        stop.set()
        await task
        client.close()


def calls_by_id(db, linkedids=None):
    with db.read() as session:
        query = sa.select(Call)
        if linkedids is not None:
            query = query.where(Call.uniqueid.in_(linkedids))
        return {c.uniqueid: c for c in session.scalars(query)}


def test_a_denied_call_gets_one_record_with_its_end(provisioned_asterisk):
    before = set(calls_by_id(provisioned_asterisk.db))

    async def scenario(client):
        # No AGI server listens for this test: route_call cannot decide, so the route denies.
        await run_actions(provisioned_asterisk.settings, provisioned_asterisk.runtime.ami_login("web"),
                          [{"Action": "Originate", "Channel": "Local/100@from-centre",
                            "Application": "Wait", "Data": "20", "Async": "true"}])
        for _ in range(300):  # the refusal is spoken, then a message is offered (5 s) before the hang-up
            new = set(calls_by_id(provisioned_asterisk.db)) - before
            ended = [c for c in calls_by_id(provisioned_asterisk.db, new).values() if c.end_at]
            if ended:
                return ended
            await asyncio.sleep(0.1)
        raise AssertionError("no call record")

    [call] = run_async(watching(provisioned_asterisk, scenario))
    assert call.outcome == "denied" and call.hangup_by == "system"  # the dialplan's Hangup()
    assert call.appointment_id is None and call.answer_at is None
    assert call.ring_at <= call.end_at


def test_calls_that_ended_unseen_are_closed_on_connect(provisioned_asterisk):
    now = dt.datetime.now(dt.timezone.utc)
    with provisioned_asterisk.db.write() as session:
        calls.on_decision(session, linkedid="unseen.1", channel="PJSIP/centre-bdr-1-00000099",
                          endpoint="centre-bdr-1", decision="connect", reason="ok", appointment_id=None, at=now)
        calls.on_answer(session, linkedid="unseen.1", at=now)

    async def scenario(_client):
        for _ in range(50):
            if calls_by_id(provisioned_asterisk.db, ["unseen.1"])["unseen.1"].end_at:
                return
            await asyncio.sleep(0.1)

    run_async(watching(provisioned_asterisk, scenario))
    closed = calls_by_id(provisioned_asterisk.db, ["unseen.1"])["unseen.1"]
    assert closed.end_at is not None and closed.hangup_by == "system" and closed.outcome == "answered"


def test_the_ami_user_cannot_spy(provisioned_asterisk):
    """Least privilege: no Command (so no `channel spy` or `mixmonitor` by CLI) for any AMI user."""
    for user in ("web", "watch", "provision"):
        [reply] = run_async(run_actions(provisioned_asterisk.settings, provisioned_asterisk.runtime.ami_login(user),
                                        [{"Action": "Command", "Command": "core show channels"}]))
        assert reply.get("Response") == "Error" and "Permission denied" in reply.get("Message", ""), user

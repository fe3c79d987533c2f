"""The call watcher: Asterisk's AMI events -> call records and appointment statuses (tawasul.calls).

The dialplan reports route_call's decision (UserEvent TawasulDecision) and, from the centre
channel's hangup handler, the end of the call (UserEvent TawasulHangup); Asterisk's own
DialBegin/DialEnd events give ring and answer times. A refused caller's recorded message
(UserEvent TawasulMessage, sent before TawasulHangup) becomes a complaint ticket (tawasul.messages).
After every (re)connection the watcher asks Asterisk which calls are still up and ends the others,
so a gap loses no record. The governor's desk registering from a new address is logged and kept
for IT (tawasul.desk_contact).
Database work runs in a worker thread: the event loop never blocks.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging

from pathlib import Path

from tawasul import calls, desk_contact, messages
from tawasul.ami import RESYNC, AmiClient, AmiUnavailable, Login
from tawasul.db import Database

log = logging.getLogger("tawasul.callwatch")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class CallWatcher:
    def __init__(self, db: Database, client: AmiClient, clock=_now, state_dir: Path | None = None):
        """`state_dir`: where recorded messages are found and attachments kept (None: messages ignored)."""
        self.db, self.client, self.clock, self.state_dir = db, client, clock, state_dir
        # before connecting: the first login's resync is not missed
        self.queue = client.subscribe(wanted=self.wanted)
        self.failed_events = 0

    @staticmethod
    def wanted(event) -> bool:
        """The few events `handle` acts on (registrations and other channels' events are not queued)."""
        name = event.get("Event", "")
        if name == "UserEvent":
            return event.get("UserEvent", "") in ("TawasulDecision", "TawasulMessage", "TawasulHangup")
        return (name == "DialBegin" or (name == "DialEnd" and event.get("DialStatus") == "ANSWER")
                or desk_contact.wanted(event))

    def handle(self, event) -> None:
        """Apply one AMI event (synchronous: run it in a worker thread)."""
        name = event.get("Event", "")
        user_event = event.get("UserEvent", "")
        linkedid = event.get("Linkedid", "")
        at = self.clock()
        with self.db.write() as session:
            if name == "UserEvent" and user_event == "TawasulDecision":
                appointment = event.get("Appointment", "")
                calls.on_decision(session, linkedid=linkedid, channel=event.get("Channel", ""),
                                  endpoint=event.get("Endpoint", ""), decision=event.get("Decision", ""),
                                  reason=event.get("Reason", ""),
                                  appointment_id=int(appointment) if appointment.isdigit() else None, at=at)
            elif name == "UserEvent" and user_event == "TawasulMessage" and self.state_dir is not None:
                appointment = event.get("Appointment", "")
                messages.file_message(session, state_dir=self.state_dir, linkedid=linkedid,
                                      file=event.get("File", ""), endpoint=event.get("Endpoint", ""),
                                      reason=event.get("Reason", ""),
                                      appointment_id=int(appointment) if appointment.isdigit() else None,
                                      today=at.date())
            elif name == "UserEvent" and user_event == "TawasulHangup":
                calls.on_hangup(session, linkedid=linkedid, at=at, source=event.get("Source", ""))
            elif name == "DialBegin":
                calls.on_ringing(session, linkedid=linkedid, peer_channel=event.get("DestChannel", ""), at=at)
            elif name == "DialEnd" and event.get("DialStatus") == "ANSWER":
                calls.on_answer(session, linkedid=linkedid, at=at)
            elif desk_contact.wanted(event):
                desk_contact.on_contact(session, event)

    def reconcile(self, live: set[str]) -> int:
        with self.db.write() as session:
            return calls.reconcile(session, live, self.clock())

    async def live_linkedids(self) -> set[str]:
        reply = await self.client.action({"Action": "CoreShowChannels"})
        events = reply if isinstance(reply, list) else [reply]
        return {e.get("Linkedid") for e in events if e.get("Event") == "CoreShowChannel"}

    async def run(self, stop: asyncio.Event) -> None:
        queue = self.queue
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _pending = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in (getter, stopper):
                    if task not in done:
                        task.cancel()
                if getter not in done:
                    break
                await self._dispatch(getter.result())
        finally:
            self.client.unsubscribe(queue)

    async def _dispatch(self, event) -> None:
        try:
            if event.get("Event") == RESYNC:
                ended = await asyncio.to_thread(self.reconcile, await self.live_linkedids())
                if ended:
                    log.info("reconciled: %d call(s) ended while events were not seen", ended)
            else:
                await asyncio.to_thread(self.handle, event)
        except AmiUnavailable as exc:
            log.warning("could not reconcile yet: %s", exc)
        except Exception:  # one bad event must not stop the watcher
            self.failed_events += 1
            log.exception("call event %s could not be recorded", event.get("Event"))


async def watch(settings, login: Login, stop: asyncio.Event) -> None:
    """Run until `stop` is set; keeps trying while Asterisk is away. `login`: the watch AMI user."""
    db = Database(settings.db_url)
    client = AmiClient.for_settings(settings, login)
    watcher = CallWatcher(db, client, state_dir=Path(settings.state_dir))
    from tawasul.livestate import LiveStateService
    live = LiveStateService(db, client)  # the console's live state, from the same connection
    metrics_server = serve_metrics(settings.callwatch_metrics_port, client, watcher) \
        if settings.callwatch_metrics_port else None
    try:
        while not stop.is_set():
            try:
                await client.connect()
                break
            except AmiUnavailable as exc:
                log.warning("%s; retrying", exc)
                await asyncio.sleep(2)
        await asyncio.gather(watcher.run(stop), live.run(stop))
    finally:
        client.close()
        db.dispose()
        if metrics_server is not None:
            metrics_server.shutdown()


def serve_metrics(port: int, client: AmiClient, watcher: CallWatcher):
    """The call watcher's metrics (tawasul.metrics), read from the AMI client and the watcher at scrape time."""
    from prometheus_client import CollectorRegistry

    from tawasul import metrics

    registry = CollectorRegistry()
    registry.register(metrics.Readings([
        ("gauge", "tawasul_ami_connected", "1 while logged in to Asterisk's AMI.", lambda: client.connected),
        ("counter", "tawasul_ami_reconnects", "AMI logins after the first (the connection was lost).",
         lambda: max(client.logins - 1, 0)),
        ("counter", "tawasul_ami_events_dropped", "AMI events dropped because a subscriber's queue was full.",
         lambda: client.dropped_events),
        ("counter", "tawasul_callwatch_events_failed", "Call events that could not be recorded.",
         lambda: watcher.failed_events),
    ]))
    return metrics.serve(port, registry, "call watcher")

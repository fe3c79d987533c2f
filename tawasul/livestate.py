"""The live state of Asterisk (which endpoints are registered, which channels are up) for the
governor's console.

`LiveState` is pure: it folds AMI events into a view and gives a compact JSON snapshot.
`LiveStateService` runs inside the call watcher (`tawasul call watch`, which already holds the one
AMI connection and sees every event): it keeps a `LiveState` up to date, rebuilds it from
DeviceStateList + CoreShowChannels after every (re)login (AMI class reporting: the watcher's AMI
user has no `system`), and writes the snapshot to the
`live_state` table (key "asterisk") when it changed, at most every FLUSH_SECONDS. Web processes
read that one row (and its `version`) to push changes to the console over server-sent events.
Database writes run in a worker thread: the event loop never blocks.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul.ami import RESYNC, AmiClient, AmiUnavailable
from tawasul.models import LiveState as LiveStateRow

log = logging.getLogger("tawasul.livestate")

KEY = "asterisk"
FLUSH_SECONDS = 0.1
_CHANNEL = re.compile(r"^PJSIP/(.+)-[0-9a-f]{8}$")
_UP_CONTACT = {"created", "reachable", "nonqualified", "updated"}
_DOWN_CONTACT = {"removed", "unreachable"}
_DOWN_DEVICE = {"unavailable"}
_UNKNOWN_DEVICE = {"unknown", "invalid", ""}


def endpoint_of_channel(channel: str) -> str:
    """PJSIP/centre-bdr-1-0000000a -> centre-bdr-1 ('' for other channels)."""
    match = _CHANNEL.match(channel or "")
    return match.group(1) if match else ""


def _device_endpoint(device: str) -> str:
    return device[6:] if (device or "").startswith("PJSIP/") else ""


class LiveState:
    def __init__(self, clock=lambda: dt.datetime.now(dt.UTC)):
        self.registered: dict[str, bool] = {}
        self.channels: dict[str, dict] = {}
        self.ami = False
        # endpoint -> when it was last seen registered (ISO, UTC), kept across resyncs: the board's "last seen"
        self.seen: dict[str, str] = {}
        self.clock = clock

    def _note_gone(self, before: dict[str, bool]) -> None:
        now = None
        for endpoint, up in before.items():
            if up and not self.registered.get(endpoint):
                now = now or self.clock().isoformat(timespec="seconds")
                self.seen[endpoint] = now

    def apply(self, event) -> bool:
        """Fold one AMI event in; True when the snapshot changed."""
        before = self.snapshot()
        was = dict(self.registered)
        name = event.get("Event", "")
        if name == "ContactStatus":
            status = str(event.get("ContactStatus", "")).lower()
            endpoint = event.get("EndpointName", "") or event.get("AOR", "")
            if endpoint and status in _UP_CONTACT:
                self.registered[endpoint] = True
            elif endpoint and status in _DOWN_CONTACT:
                self.registered[endpoint] = False
        elif name == "DeviceStateChange":
            endpoint = _device_endpoint(event.get("Device", ""))
            state = str(event.get("State", "")).lower()
            if endpoint and state not in _UNKNOWN_DEVICE:
                self.registered[endpoint] = state not in _DOWN_DEVICE
        elif name == "PeerStatus":
            endpoint = _device_endpoint(event.get("Peer", ""))
            status = str(event.get("PeerStatus", "")).lower()
            if endpoint and status in ("reachable", "registered"):
                self.registered[endpoint] = True
            elif endpoint and status in ("unreachable", "unregistered"):
                self.registered[endpoint] = False
        elif name in ("Newchannel", "Newstate"):
            channel = event.get("Channel", "")
            if channel:
                self.channels[channel] = {"endpoint": endpoint_of_channel(channel),
                                          "state": event.get("ChannelStateDesc", ""),
                                          "linkedid": event.get("Linkedid", "")}
        elif name == "Hangup":
            self.channels.pop(event.get("Channel", ""), None)
        self._note_gone(was)
        return self.snapshot() != before

    def resync(self, endpoints: list, channels: list) -> None:
        """Replace the view with DeviceStateList's (or PJSIPShowEndpoints') and CoreShowChannels' answers."""
        was, self.registered = self.registered, {}
        for event in endpoints:
            if event.get("Event") == "DeviceStateChange" and _device_endpoint(event.get("Device", "")):
                state = str(event.get("State", "")).lower()
                self.registered[_device_endpoint(event["Device"])] = state not in _DOWN_DEVICE | _UNKNOWN_DEVICE
            elif event.get("Event") == "EndpointList" and event.get("ObjectName"):
                state = str(event.get("DeviceState", "")).lower()
                self.registered[event["ObjectName"]] = state not in _DOWN_DEVICE | _UNKNOWN_DEVICE
        self._note_gone(was)
        self.channels = {}
        for event in channels:
            if event.get("Event") == "CoreShowChannel" and event.get("Channel"):
                self.channels[event["Channel"]] = {"endpoint": endpoint_of_channel(event["Channel"]),
                                                   "state": event.get("ChannelStateDesc", ""),
                                                   "linkedid": event.get("Linkedid", "")}

    def snapshot(self) -> dict:
        return {"ami": self.ami,
                "registered": sorted(e for e, up in self.registered.items() if up),
                "channels": {name: dict(c) for name, c in sorted(self.channels.items())},
                "seen": dict(self.seen)}


def save(session: Session, snapshot: dict, now: dt.datetime | None = None) -> int:
    """Store the snapshot; returns its new version."""
    row = session.get(LiveStateRow, KEY)
    if row is None:
        row = LiveStateRow(key=KEY, version=0, data={})
        session.add(row)
    row.version = (row.version or 0) + 1
    row.data = snapshot
    row.updated_at = now or dt.datetime.now(dt.UTC)
    session.flush()
    return row.version


def load(session: Session) -> tuple[int, dict]:
    """(version, snapshot) as last stored; (0, an empty snapshot) before the watcher ever ran."""
    row = session.execute(sa.select(LiveStateRow.version, LiveStateRow.data)
                          .where(LiveStateRow.key == KEY)).first()
    if row is None:
        return 0, {"ami": False, "registered": [], "channels": {}, "seen": {}}
    return row.version, row.data


class LiveStateService:
    """Keeps `LiveState` from the shared AMI client's events and publishes it to the database."""

    def __init__(self, db, client: AmiClient, flush_seconds: float = FLUSH_SECONDS):
        self.db, self.client, self.flush_seconds = db, client, flush_seconds
        self.state = LiveState()
        self.queue = client.subscribe()  # before connecting: the first login's resync is not missed
        self._published: dict | None = None

    async def _resync(self) -> None:
        endpoints = await self.client.action({"Action": "DeviceStateList"})
        channels = await self.client.action({"Action": "CoreShowChannels"})
        self.state.resync(endpoints if isinstance(endpoints, list) else [endpoints],
                          channels if isinstance(channels, list) else [channels])

    def _write(self, snapshot: dict) -> None:
        with self.db.write() as session:
            save(session, snapshot)

    async def publish(self) -> None:
        self.state.ami = self.client.connected
        snapshot = self.state.snapshot()
        if snapshot != self._published:
            await asyncio.to_thread(self._write, snapshot)
            self._published = snapshot

    async def run(self, stop: asyncio.Event) -> None:
        queue = self.queue
        dirty, last_flush = True, 0.0
        try:
            while not stop.is_set():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=self.flush_seconds)
                except TimeoutError:
                    event = None
                try:
                    if event is not None and event.get("Event") == RESYNC:
                        await self._resync()
                        dirty = True
                    elif event is not None:
                        dirty = self.state.apply(event) or dirty
                    if self.client.connected != self.state.ami:
                        dirty = True
                    # Write when the burst is over, or every flush_seconds during one.
                    if dirty and (queue.empty() or time.monotonic() - last_flush >= self.flush_seconds):
                        await self.publish()
                        dirty, last_flush = False, time.monotonic()
                except AmiUnavailable as exc:
                    log.warning("could not resynchronise the live state yet: %s", exc)
                except Exception:  # one bad event must not stop the service
                    log.exception("live state: event %s not applied", event and event.get("Event"))
        finally:
            self.client.unsubscribe(queue)

"""The console's live state from fake AMI events: registrations, channels, the resync after a
login, and the service publishing one snapshot row (with a version) per change."""
import asyncio
import datetime as dt

from panoramisk.message import Message

from tawasul import livestate
from tawasul.ami import RESYNC
from tawasul.livestate import LiveState, LiveStateService
from tests.live import run_async


def ev(**fields):
    return Message(fields)


def test_registrations_from_contact_device_and_peer_events():
    state = LiveState()
    assert state.apply(ev(Event="ContactStatus", EndpointName="centre-bdr-1", AOR="centre-bdr-1",
                          ContactStatus="Created"))
    assert state.snapshot()["registered"] == ["centre-bdr-1"]
    assert not state.apply(ev(Event="ContactStatus", EndpointName="centre-bdr-1", ContactStatus="Reachable"))
    assert state.apply(ev(Event="ContactStatus", EndpointName="centre-bdr-1", ContactStatus="Removed"))
    assert state.snapshot()["registered"] == []
    assert state.apply(ev(Event="DeviceStateChange", Device="PJSIP/centre-ula-1", State="NOT_INUSE"))
    assert state.apply(ev(Event="DeviceStateChange", Device="PJSIP/centre-ula-1", State="UNAVAILABLE"))
    assert not state.apply(ev(Event="DeviceStateChange", Device="PJSIP/centre-ula-1", State="UNKNOWN"))
    assert not state.apply(ev(Event="DeviceStateChange", Device="Queue:sales", State="INUSE"))
    assert state.apply(ev(Event="PeerStatus", Peer="PJSIP/governor-desk-1", PeerStatus="Reachable"))
    assert state.snapshot()["registered"] == ["governor-desk-1"]
    assert not state.apply(ev(Event="VarSet", Channel="PJSIP/x-00000001", Variable="A", Value="1"))


def test_last_seen_is_when_a_device_stopped_being_registered_and_survives_a_resync():
    times = iter(["2026-12-01T09:00:00+00:00", "2026-12-01T09:05:00+00:00"])
    state = LiveState(clock=lambda: dt.datetime.fromisoformat(next(times)))
    state.apply(ev(Event="ContactStatus", EndpointName="centre-bdr-1", ContactStatus="Created"))
    assert state.snapshot()["seen"] == {}  # registered now: nothing to remember yet
    state.apply(ev(Event="ContactStatus", EndpointName="centre-bdr-1", ContactStatus="Removed"))
    assert state.snapshot()["seen"] == {"centre-bdr-1": "2026-12-01T09:00:00+00:00"}
    state.resync([ev(Event="EndpointList", ObjectName="centre-ynb-1", DeviceState="Not in use")], [])
    assert state.snapshot()["seen"] == {"centre-bdr-1": "2026-12-01T09:00:00+00:00"}
    state.resync([], [])  # YNB gone while the watcher was away: seen at the resync
    assert state.snapshot()["seen"]["centre-ynb-1"] == "2026-12-01T09:05:00+00:00"


def test_channels_come_and_go():
    state = LiveState()
    state.apply(ev(Event="Newchannel", Channel="PJSIP/centre-bdr-1-0000000a", ChannelStateDesc="Ring",
                   Linkedid="17.1"))
    state.apply(ev(Event="Newstate", Channel="PJSIP/centre-bdr-1-0000000a", ChannelStateDesc="Up", Linkedid="17.1"))
    assert state.snapshot()["channels"] == {
        "PJSIP/centre-bdr-1-0000000a": {"endpoint": "centre-bdr-1", "state": "Up", "linkedid": "17.1"}}
    assert state.apply(ev(Event="Hangup", Channel="PJSIP/centre-bdr-1-0000000a"))
    assert state.snapshot()["channels"] == {}
    assert livestate.endpoint_of_channel("Local/100@from-centre-00000001;1") == ""


def test_resync_replaces_the_view():
    state = LiveState()
    state.apply(ev(Event="ContactStatus", EndpointName="gone", ContactStatus="Created"))
    state.apply(ev(Event="Newchannel", Channel="PJSIP/gone-00000001", ChannelStateDesc="Up"))
    state.resync(
        [ev(Event="EndpointList", ObjectName="centre-bdr-1", DeviceState="Not in use"),
         ev(Event="EndpointList", ObjectName="centre-ula-1", DeviceState="Unavailable"),
         ev(Event="EndpointList", ObjectName="governor-desk-1", DeviceState="In use"),
         ev(Event="EndpointListComplete")],
        [ev(Event="CoreShowChannel", Channel="PJSIP/governor-desk-1-00000002", ChannelStateDesc="Up",
            Linkedid="18.1"), ev(Event="CoreShowChannelsComplete")])
    snap = state.snapshot()
    assert snap["registered"] == ["centre-bdr-1", "governor-desk-1"]
    assert list(snap["channels"]) == ["PJSIP/governor-desk-1-00000002"]


class FakeClient:
    """What LiveStateService uses of tawasul.ami.AmiClient."""

    def __init__(self):
        self.queue = asyncio.Queue()
        self.connected = True
        self.actions = []

    def subscribe(self):
        return self.queue

    def unsubscribe(self, queue):
        pass

    async def action(self, action):
        self.actions.append(action["Action"])
        if action["Action"] == "DeviceStateList":
            return [ev(Event="DeviceStateChange", Device="PJSIP/centre-bdr-1", State="UNAVAILABLE"),
                    ev(Event="DeviceStateChange", Device="PJSIP/governor-desk-1", State="NOT_INUSE"),
                    ev(Event="DeviceStateChange", Device="Queue:governor_avail", State="NOT_INUSE")]
        return [ev(Response="Success"), ev(Event="CoreShowChannelsComplete")]


def test_the_service_publishes_each_change_once(db):
    async def scenario():
        client = FakeClient()
        service = LiveStateService(db, client, flush_seconds=0.02)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))

        async def stored(predicate):
            for _ in range(100):
                with db.read() as session:
                    version, snap = livestate.load(session)
                if predicate(snap):
                    return version, snap
                await asyncio.sleep(0.02)
            raise AssertionError(snap)

        await client.queue.put(ev(Event=RESYNC))
        version, snap = await stored(lambda s: s["registered"] == ["governor-desk-1"])
        assert snap["ami"] is True and client.actions == ["DeviceStateList", "CoreShowChannels"]
        await client.queue.put(ev(Event="ContactStatus", EndpointName="centre-bdr-1", ContactStatus="Created"))
        version2, _ = await stored(lambda s: "centre-bdr-1" in s["registered"])
        assert version2 == version + 1
        for _ in range(20):  # events that change nothing write nothing
            await client.queue.put(ev(Event="VarSet", Channel="PJSIP/x-00000001"))
        await asyncio.sleep(0.2)
        with db.read() as session:
            assert livestate.load(session)[0] == version2
        client.connected = False  # AMI lost: the page must know its state may be stale
        version3, snap = await stored(lambda s: s["ami"] is False)
        assert version3 == version2 + 1
        stop.set()
        await task

    run_async(scenario())  # not asyncio.run: the browser tests keep a loop on this thread


def test_load_before_any_snapshot(db):
    with db.read() as session:
        assert livestate.load(session) == (0, {"ami": False, "registered": [], "channels": {}, "seen": {}})

"""The one AMI client (panoramisk) that provisioning, the call services and the web console share.

- logs in and waits for the login to be accepted (panoramisk sends it from a callback);
- reconnects by itself; after each login it tells subscribers to resynchronise (`TawasulResync`);
- never blocks in an event handler: events go to bounded per-subscriber queues (oldest dropped);
- every action has a timeout, and a timed-out action is forgotten (no pending-action leak).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Iterable
from typing import NamedTuple

from panoramisk import Manager
from panoramisk.message import Message

from tawasul.settings import generated_secret

log = logging.getLogger(__name__)

RESYNC = "TawasulResync"


# Each process logs in as its own AMI user with the least rights it needs (manager.conf). Asterisk
# files its actions in coarse classes (`manager show command X`, Privilege): ModuleLoad, Reload,
# DBPut/DBDel, ModuleCheck and the PJSIPShow* listings are all `system`, so only "provision" has it.
# No user may write `command` (any CLI command) or `config` (edit files).
USERS = {
    # The web's call control and `tawasul call next`: Originate (originate), Hangup (call),
    # CoreShowChannels, CoreSettings, CoreStatus (reporting). No events.
    "web": {"read": "", "write": "originate,call,reporting"},
    # The call watcher: call, user-event, waiting-line (agent: QueueCallerJoin...) and
    # registration (ContactStatus: system) events; CoreShowChannels and DeviceStateList
    # (reporting) to resynchronise.
    "watch": {"read": "call,user,agent,system", "write": "reporting"},
    # Configuration: reloads after `provision apply` (ModuleLoad reload, Reload), the console's
    # credentials in AstDB (DBPut, DBDel), the board's registration listings (PJSIPShow*) and its
    # loaded-modules check (ModuleCheck). No events.
    "provision": {"read": "", "write": "system"},
}


class Login(NamedTuple):
    username: str
    secret: str


def username(settings, user: str) -> str:
    """`<ami_user>-<user>`: tawasul-web, tawasul-watch, tawasul-provision."""
    if user not in USERS:
        raise ValueError(f"no AMI user {user!r}")
    return f"{settings.ami_user}-{user}"


def secret(settings, user: str) -> str:
    """The AMI user's secret, generated once and kept in the state folder (secrets/ami-<user>)."""
    username(settings, user)  # a known user
    return generated_secret(settings, f"ami-{user}")


def login(settings, user: str) -> Login:
    return Login(username(settings, user), secret(settings, user))


class AmiUnavailable(ConnectionError):
    """Asterisk's manager interface cannot be reached or refused the login."""


class _Manager(Manager):
    """panoramisk's Manager, telling us when Asterisk refuses the login (it only reports success)."""

    on_refused = staticmethod(lambda: None)

    def login(self, future):
        accepted = super().login(future)
        if not accepted:
            self.on_refused()
        return accepted


class AmiClient:
    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 action_timeout: float = 10, reconnect_seconds: int = 1):
        self.action_timeout = action_timeout
        self._config = dict(host=host, port=port, username=username, secret=secret,
                            ping_delay=10, reconnect_timeout=reconnect_seconds, events="on")
        self._manager: Manager | None = None
        self._logged_in = asyncio.Event()
        self._subscribers: list[tuple[asyncio.Queue, object]] = []  # (queue, wanted or None)
        self.dropped_events = 0
        self.logins = 0  # the first, then one a reconnection

    @classmethod
    def for_settings(cls, settings, login: Login, **kwargs) -> "AmiClient":
        return cls(settings.ami_host, settings.ami_port, login.username, login.secret, **kwargs)

    @property
    def connected(self) -> bool:
        return self._logged_in.is_set()

    @property
    def pending_actions(self) -> int:
        protocol = getattr(self._manager, "protocol", None)
        return len(getattr(protocol, "responses", {}) or {})

    async def connect(self, timeout: float = 10) -> None:
        loop = asyncio.get_running_loop()
        refused = asyncio.Event()
        self._manager = _Manager(loop=loop, on_login=self._on_login, on_disconnect=self._on_disconnect,
                                 **self._config)
        self._manager.on_refused = refused.set
        self._manager.register_event("*", self._on_event)
        self._manager.connect()
        waiters = [asyncio.ensure_future(self._logged_in.wait()), asyncio.ensure_future(refused.wait())]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if not self._logged_in.is_set():
            self.close()
            where = f"{self._config['host']}:{self._config['port']}"
            if refused.is_set():
                raise AmiUnavailable(f"AMI at {where} refused the login (wrong user or secret)")
            raise AmiUnavailable(f"no AMI login at {where} within {timeout:.0f} s (is Asterisk running?)")

    def close(self) -> None:
        if self._manager is not None:
            self._manager.callbacks.clear()
            self._manager.connection_lost = lambda exc: None  # closing on purpose: no reconnect
            self._manager.close()
            self._manager = None
        self._logged_in.clear()

    async def action(self, action: dict, timeout: float | None = None) -> Message | list[Message]:
        """Send one action; its response (a list for actions that answer with events)."""
        if not self.connected:
            raise AmiUnavailable("not logged in to AMI")
        # An Async Originate is answered at once ("successfully queued"); panoramisk would go on
        # waiting for its OriginateResponse event, that is, until the call is answered or given up.
        queued_only = (str(action.get("Action", "")).lower() == "originate"
                       and str(action.get("Async", "")).lower() == "true")
        future = self._manager.send_action(dict(action), as_list=False if queued_only else None)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout or self.action_timeout)
        except asyncio.TimeoutError:
            self._forget(future)
            raise AmiUnavailable(f"AMI action {action.get('Action')} had no answer in time") from None

    def _forget(self, future) -> None:
        responses = getattr(getattr(self._manager, "protocol", None), "responses", None) or {}
        for key in [k for k, pending in responses.items() if getattr(pending, "future", pending) is future]:
            responses.pop(key, None)
        future.cancel()

    def subscribe(self, maxsize: int = 10000, wanted=None) -> asyncio.Queue:
        """A queue of every event from now on, or of those `wanted(event)` accepts (and a RESYNC
        marker after each reconnect, always): a subscriber that needs few events never has its
        queue filled, and so its events dropped, by the others."""
        queue: asyncio.Queue = asyncio.Queue(maxsize)
        self._subscribers.append((queue, wanted))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers = [(q, w) for q, w in self._subscribers if q is not queue]

    def _publish(self, event) -> None:
        marker = event.get("Event") == RESYNC
        for queue, wanted in self._subscribers:
            if wanted is not None and not marker and not wanted(event):
                continue
            if queue.full():
                queue.get_nowait()
                self.dropped_events += 1
            queue.put_nowait(event)

    def _on_event(self, _manager, event) -> None:
        self._publish(event)

    def _on_login(self, _manager) -> None:
        self.logins += 1
        self._logged_in.set()
        self._publish(Message({"Event": RESYNC}))

    def _on_disconnect(self, _manager, exc) -> None:
        self._logged_in.clear()
        log.warning("AMI connection lost (%s); reconnecting", exc or "closed")


async def run_actions(settings, login: Login, actions: Iterable[dict], timeout: float = 10) -> list:
    """Log in, send `actions` one after another, log out: for short-lived commands."""
    client = AmiClient.for_settings(settings, login, action_timeout=timeout)
    await client.connect(timeout)
    try:
        return [await client.action(action) for action in actions]
    finally:
        client.close()


def run_actions_blocking(settings, login: Login, actions: Iterable[dict], timeout: float = 10) -> list:
    """run_actions() from synchronous code, on a thread of its own: safe even where an event loop
    already runs on the caller's thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run_actions(settings, login, list(actions), timeout)).result()


def succeeded(response) -> bool:
    first = response[0] if isinstance(response, list) else response
    return str(first.get("Response", "")).lower() == "success"

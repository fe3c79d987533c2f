"""Apply the database to the running Asterisk: load rows, render, validate, write, reload narrowly.

    result = apply(settings, db, runtime, actor="it_admin")

Only the files whose content changed are written (atomically), and only the modules that read
them are reloaded, over AMI (panoramisk): pjsip.conf -> `ModuleLoad reload res_pjsip.so`,
extensions.conf -> `Reload pbx_config` (dialplan reload), http.conf -> `Reload http`, rtp.conf ->
res_rtp_asterisk.so, queues.conf -> app_queue.so, musiconhold.conf -> res_musiconhold.so. Asterisk is never restarted: a change
to another file (or to the TLS certificate) is reported in `restart_needed`. A render or
validation failure writes nothing and reloads nothing. Every run is kept in the audit log.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from provisioning.render import RenderError
from provisioning.rows import Rows, load_rows
from provisioning.runtime import AsteriskRuntimeError
from tawasul import ami, asterisk_modules, audit
from tawasul.vault import Vault

# In the order they are sent: the dialplan first, so no endpoint ever points at a missing context.
RELOADS = (
    ("extensions.conf", {"Action": "Reload", "Module": "pbx_config"}),
    # The console's secure websocket (Asterisk's HTTPS server) and its ICE candidates: before pjsip.
    ("http.conf", {"Action": "Reload", "Module": "http"}),
    ("rtp.conf", {"Action": "ModuleLoad", "LoadType": "reload", "Module": "res_rtp_asterisk.so"}),
    ("pjsip.conf", {"Action": "ModuleLoad", "LoadType": "reload", "Module": "res_pjsip.so"}),
    # The waiting line's members are the governor's desks (queues.conf): after their endpoints.
    ("queues.conf", {"Action": "ModuleLoad", "LoadType": "reload", "Module": "app_queue.so"}),
    ("musiconhold.conf", {"Action": "ModuleLoad", "LoadType": "reload", "Module": "res_musiconhold.so"}),
)
# Sends AMI actions, returns one (success, message) per action. Tests pass their own.
Sender = Callable[[object, ami.Login, list[dict]], list[tuple[bool, str]]]


@dataclass
class ApplyResult:
    changed_files: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)      # "Reload pbx_config", ...
    errors: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)      # the AMI actions sent, exactly
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        out = [f"changed: {', '.join(self.changed_files) or 'nothing'}",
               f"reloaded: {', '.join(self.reloaded) or 'nothing'}"]
        if self.restart_needed:
            out.append(f"takes effect on the next Asterisk restart: {', '.join(self.restart_needed)}")
        out += [f"error: {e}" for e in self.errors]
        out.append(f"{'applied' if self.ok else 'FAILED'} in {self.seconds:.2f} s")
        return out


def describe(action: dict) -> str:
    """`module reload res_pjsip.so`, `Reload pbx_config`: an AMI action in one line."""
    if action["Action"] == "ModuleLoad":
        return f"module {action['LoadType']} {action['Module']}"
    return f"{action['Action']} {action.get('Module', '')}".strip()


def plan(changed: list[str]) -> tuple[list[dict], list[str]]:
    """AMI actions for the changed files (names relative to the instance folder), and what needs a restart."""
    names = set(changed)
    actions = [dict(action) for conf, action in RELOADS if f"etc/{conf}" in names]
    reloadable = {f"etc/{conf}" for conf, _ in RELOADS}
    return actions, sorted(names - reloadable)


def ami_sender(settings, login: ami.Login, actions: list[dict], timeout: float = 15) -> list[tuple[bool, str]]:
    """Send `actions` over one AMI login: (succeeded, message) for each."""
    replies = ami.run_actions_blocking(settings, login, actions, timeout)
    return [(ami.succeeded(reply), str(reply.get("Message", ""))) for reply in replies]


def _record(db, actor: str, result: ApplyResult) -> None:
    with db.write() as session:
        audit.record(session, actor, "provision.apply", None, changed=result.changed_files,
                     reloaded=result.reloaded, errors=result.errors, restart_needed=result.restart_needed,
                     seconds=round(result.seconds, 3))


def load(settings, db) -> Rows:
    vault = Vault.for_settings(settings)
    with db.read() as session:
        return load_rows(session, vault)


def _refuse_forbidden_modules(settings, runtime) -> None:
    """Nothing is applied to an Asterisk that could load (or has loaded) a module that spies or records."""
    runtime.refuse_forbidden_modules()
    if runtime.is_running():
        try:
            loaded = asterisk_modules.loaded_forbidden(settings)
        except ami.AmiUnavailable:
            return  # the reloads report it (an Asterisk started before the AMI users were split, say)
        if loaded:
            raise AsteriskRuntimeError(f"refusing to apply: Asterisk has loaded modules that spy on or record "
                                       f"sessions: {', '.join(loaded)}; stop it, delete their files, start it again")


def apply(settings, db, runtime, actor: str, sender: Sender | None = None) -> ApplyResult:
    """Load, render, validate, write what changed, reload what reads it. Never raises for a
    render, validation or AMI problem: those are in `result.errors` (and the audit log)."""
    started = time.monotonic()
    result = ApplyResult()
    try:
        _refuse_forbidden_modules(settings, runtime)
        files = runtime.render(load(settings, db))
    except RenderError as exc:
        result.errors = list(exc.errors)
    except AsteriskRuntimeError as exc:  # a forbidden module
        result.errors = [str(exc)]
    except ValueError as exc:  # e.g. a secret that cannot be decrypted with this state folder's key
        result.errors = [str(exc)]
    else:
        changed = runtime.write_keys() + runtime.write_config(files)
        result.changed_files = sorted(str(Path(p).relative_to(runtime.host_dir)) for p in changed)
        actions, result.restart_needed = plan(result.changed_files)
        if actions and runtime.is_running():
            try:
                answers = (sender or ami_sender)(settings, runtime.ami_login("provision"), actions)
            except OSError as exc:  # AmiUnavailable: Asterisk down or the login refused
                result.errors.append(f"AMI: {type(exc).__name__}: {exc}")
            else:
                result.actions = actions
                for action, (ok, message) in zip(actions, answers):
                    if ok:
                        result.reloaded.append(describe(action))
                    else:
                        result.errors.append(f"{describe(action)} failed: {message}")
        elif actions:
            result.restart_needed = sorted(set(result.restart_needed) | set(result.changed_files))
    result.seconds = time.monotonic() - started
    _record(db, actor, result)
    return result

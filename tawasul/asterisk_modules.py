"""The Asterisk modules Tawasul never lets load, and the check that none is loaded.

Sessions are between two parties only. Anyone who can send AMI's ModuleLoad (the `system` class,
which reloading needs) could load any module whose file is present, whatever modules.conf says
(`noload` only stops loading at start). So these modules are `noload` in modules.conf, deleted
from Tawasul's own Asterisk root filesystem (provisioning.runtime), refused at start when their
file is present on a host Asterisk, and checked over AMI (ModuleCheck) on the board.
"""
from __future__ import annotations

from tawasul import ami

FORBIDDEN_MODULES = (
    "app_chanspy",          # ChanSpy and ExtenSpy (Asterisk 22 has no app_extenspy): listen, whisper, barge
    "app_mixmonitor",       # records a session's two sides
    "app_monitor",          # the same, Asterisk 20 (gone in 21)
    "res_monitor",          # its Asterisk 20 resource
    "res_stasis_snoop",     # ARI's snoop: a spy channel on any channel
    "res_stasis_recording",  # ARI's recording of channels and bridges
    "res_ari",              # the whole REST interface (channels, bridges, recordings); Tawasul uses none
    "app_audiosocket",      # streams a channel's audio to any TCP server
    "chan_audiosocket",
    "app_bridgeaddchan",    # BridgeAdd(): joins a third channel into a running session
    "app_system",           # System()/TrySystem(): shell commands
    "func_shell",           # SHELL()
    "chan_sip",             # the old SIP stack (no TLS/SRTP policy of ours; gone in 21)
)
# Not forbidden: app_record. After a refused call a citizen may leave a message of their own
# (Record() records the caller's channel alone, never a session: asterisk_conf/extensions.conf.j2).


def so_names() -> list[str]:
    return [f"{name}.so" for name in FORBIDDEN_MODULES]


def loaded_forbidden(settings, timeout: float = 5) -> list[str]:
    """The forbidden modules Asterisk has loaded now (AMI ModuleCheck, as the provision user).
    Raises ami.AmiUnavailable when AMI cannot be reached."""
    actions = [{"Action": "ModuleCheck", "Module": name} for name in FORBIDDEN_MODULES]
    replies = ami.run_actions_blocking(settings, ami.login(settings, "provision"), actions, timeout)
    return [name for name, reply in zip(FORBIDDEN_MODULES, replies) if ami.succeeded(reply)]

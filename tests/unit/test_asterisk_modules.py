"""Forbidden modules are refused where their files are present (a host Asterisk); the desk's new
addresses are told apart from the old one (the call watcher's rule, on a real database)."""
from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from provisioning import runtime as asterisk_runtime
from tawasul import desk_contact
from tawasul.models import AuditEntry
from tawasul.settings import Settings


def host_like_root(tmp_path, *modules: str):
    """A filesystem laid out like a host's Asterisk packages: a modules folder with these files."""
    moddir = tmp_path / "root" / "usr/lib/x86_64-linux-gnu/asterisk/modules"
    moddir.mkdir(parents=True)
    for name in ("chan_pjsip.so", "app_dial.so", *modules):
        (moddir / name).write_bytes(b"\x7fELF")
    settings = dataclasses.replace(Settings(), state_dir=tmp_path / "state", asterisk_cache=tmp_path / "cache")
    return asterisk_runtime.Runtime(settings, root=tmp_path / "root", binary="/usr/sbin/asterisk")


def test_an_asterisk_that_could_load_a_spy_module_is_refused_before_anything_is_written(tmp_path):
    rt = host_like_root(tmp_path, "app_chanspy.so", "app_mixmonitor.so")
    assert rt.forbidden_module_files() == ["app_chanspy.so", "app_mixmonitor.so"]
    with pytest.raises(asterisk_runtime.AsteriskRuntimeError, match=r"refusing this Asterisk.*app_chanspy\.so, app_mixmonitor\.so"):
        rt.render_and_write()
    assert not (rt.host_dir / "etc").exists()


def test_an_asterisk_without_them_passes(tmp_path):
    rt = host_like_root(tmp_path, "app_record.so")  # a citizen's own message: allowed
    assert rt.forbidden_module_files() == []
    rt.refuse_forbidden_modules()


@pytest.mark.parametrize("uri, host", [
    ("sip:governor-desk-1@127.0.0.7:5110;transport=tls", "127.0.0.7"),
    ("sips:governor-desk-1@[2001:db8::1]:5061", "2001:db8::1"),
    ("sip:10.1.2.3:5060", "10.1.2.3"),
    ("", ""),
])
def test_the_address_of_a_contact(uri, host):
    assert desk_contact.address(uri) == host


def contact(endpoint, host):
    return {"Event": "ContactStatus", "ContactStatus": "NonQualified", "EndpointName": endpoint,
            "URI": f"sip:{endpoint}@{host}:5110;transport=tls"}


def test_only_a_change_of_the_desks_address_is_an_alert(demo_db):
    with demo_db.write() as session:
        assert desk_contact.on_contact(session, contact("governor-desk-1", "127.0.0.1")) is None  # first seen
        assert desk_contact.on_contact(session, contact("governor-desk-1", "127.0.0.1")) is None  # same place
        assert desk_contact.on_contact(session, contact("centre-bdr-1", "127.0.0.9")) is None     # not a desk
        assert desk_contact.on_contact(session, contact("governor-desk-1", "192.0.2.50")) == "127.0.0.1"
    with demo_db.read() as session:
        actions = session.scalars(sa.select(AuditEntry.action).where(AuditEntry.action.like("desk.%"))).all()
        assert actions == [desk_contact.FIRST, desk_contact.CHANGED]
        [change] = desk_contact.latest_changes(session)
    assert (change["sip_user"], change["previous"], change["address"]) == ("governor-desk-1", "127.0.0.1", "192.0.2.50")


def test_apply_refuses_such_an_asterisk_and_writes_nothing(tmp_path, demo_db):
    from provisioning.apply import apply

    rt = host_like_root(tmp_path, "app_chanspy.so")
    result = apply(rt.settings, demo_db, rt, "test")
    assert not result.ok and "app_chanspy.so" in result.errors[0] and result.changed_files == []
    assert not (rt.host_dir / "etc").exists()

"""validate(): a broken render is refused, and nothing is written."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from provisioning import render, validate as v
from provisioning.rows import Rows
from tawasul.settings import Settings
from tests.unit.test_render_rows import AMI_SECRETS, ROWS


@pytest.fixture
def files():
    settings = dataclasses.replace(Settings(), state_dir=Path("/var/lib/tawasul-golden"))
    layout = dataclasses.replace(render.default_layout(settings), tls_cert="/k/a.crt", tls_key="/k/a.key")
    return render.render_all(settings, ROWS, AMI_SECRETS, layout)


def broken(files, name, extra="", replace=None):
    out = dict(files)
    text = out[name]
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    out[name] = text + extra
    return out


def test_our_render_is_valid(files):
    assert v.validate(files) == []
    assert v.validate(render.render_base(dataclasses.replace(Settings(), state_dir=Path("/x")), AMI_SECRETS)) == []


@pytest.mark.parametrize("name, change, message", [
    ("pjsip.conf", ("password_digest = MD5:", "password = "), "plain"),
    ("pjsip.conf", ("media_encryption = sdes", "media_encryption = no"), "media_encryption must be sdes"),
    ("pjsip.conf", ("(endpoint-centre,acl-centre-bdr)", "(endpoint-center,acl-centre-bdr)"), "unknown template"),
    ("pjsip.conf", ("aors = centre-bdr-1", "aors = centre-bdr-9"), "unknown aor"),
    ("pjsip.conf", ("context = from-centre", "context = from-nowhere"), "unknown dialplan context"),
    ("pjsip.conf", ("transport = transport-tls", "transport = transport-udp"), "unknown transport"),
    ("pjsip.conf", ("protocol = tls", "protocol = udp"), "not TLS"),
    ("pjsip.conf", ("realm = tawasul\n", "realm =\n"), "has no value"),
    ("extensions.conf", ("Dial(PJSIP/governor-desk-1,30,", "Dial(PJSIP/governor-desk-9,30,"), "unknown endpoint"),
    ("extensions.conf", (" same = n,Hangup()\n", " same = n,MixMonitor(/tmp/x.wav)\n"), "never allowed"),
    ("extensions.conf", (" same = n,Hangup()\n", " same = n,ChanSpy(PJSIP)\n"), "never allowed"),
    ("extensions.conf", (" same = n,Hangup()\n", " same = n,System(id)\n"), "never allowed"),
    ("extensions.conf", (" same = n,Echo()\n", " same = n,Record(/srv/tawasul/4c8fe15737/spool/messages/x.wav)\n"),
     "Record outside"),
    ("extensions.conf", ("Record(/srv/tawasul/4c8fe15737/spool/messages/", "Record(/tmp/"), "messages folder"),
    ("queues.conf", ("ringinuse = no", "ringinuse = no\nmonitor-type = MixMonitor"), "records calls"),
    ("queues.conf", ("Local/governor-desk-1@tawasul-line-member/n", "Local/governor-desk-1@from-centre/n"),
     "member"),
    ("queues.conf", (",PJSIP/governor-desk-1", ",PJSIP/governor-desk-9"), "member"),
    ("musiconhold.conf", ("mode = files", "mode = custom\napplication = /bin/sh -c id"), "mode"),
    ("extensions.conf", ("Goto(tawasul-internal,echo,1)", "Goto(tawasul-external,echo,1)"), "unknown context"),
    ("modules.conf", ("load = app_echo.so", "load = app_chanspy.so"), "forbidden module"),
    ("modules.conf", ("autoload = no", "autoload = yes"), "autoload"),
    ("manager.conf", ("write = system\n", "write = command,system\n"), "command"),
    ("manager.conf", ("write = originate,call,reporting\n", "write = system,originate,call,reporting\n"),
     "tawasul-web may write system"),
])
def test_broken_renders_are_refused(files, name, change, message):
    errors = v.validate(broken(files, name, replace=change))
    assert any(message in e for e in errors), errors


def test_duplicates_and_garbage(files):
    errors = v.validate(broken(files, "pjsip.conf", "\n[centre-bdr-1](auth-device)\nusername = x\npassword_digest = MD5:ab\n"))
    assert any("duplicate auth [centre-bdr-1]" in e for e in errors), errors
    errors = v.validate(broken(files, "extensions.conf", "\n[from-centre]\nexten = 1,1,Hangup()\n"))
    assert any("duplicate context" in e for e in errors)
    errors = v.validate(broken(files, "rtp.conf", "\nthis is not a line\n#exec /bin/sh\n"))
    assert any("cannot parse" in e for e in errors) and any("#exec" in e for e in errors)


def test_a_refused_render_writes_nothing(tmp_path, monkeypatch):
    from provisioning import certs, runtime

    settings = dataclasses.replace(Settings(), state_dir=tmp_path / "state", asterisk_cache=tmp_path / "cache")
    certs.ensure_certificates(settings)
    rt = runtime.Runtime(settings, root=None, binary="/bin/false")
    monkeypatch.setattr(rt, "_packaged_dirs", lambda: {"moddir": "/m", "datadir": "/d", "agidir": "/a"})
    monkeypatch.setattr(v, "validate", lambda files, **_: ["pjsip.conf: broken on purpose"])
    with pytest.raises(render.RenderError, match="broken on purpose"):
        rt.render_and_write(rows=ROWS)
    assert not (rt.host_dir / "etc").exists() or list((rt.host_dir / "etc").iterdir()) == []
    assert not (rt.host_dir / "keys" / "asterisk.key").exists()
    monkeypatch.undo()
    rt2 = runtime.Runtime(settings, root=None, binary="/bin/false")
    monkeypatch.setattr(rt2, "_packaged_dirs", lambda: {"moddir": "/m", "datadir": "/d", "agidir": "/a"})
    assert rt2.render_and_write(rows=Rows())  # a good render is written

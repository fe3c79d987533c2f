"""`tawasul service install`: systemd units and a logrotate file with this installation's real
paths, that systemd and logrotate accept, each service hardened and never root."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning import privilege, service

pytestmark = pytest.mark.integration


def install(state: Path, prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tawasul", "--state-dir", str(state), "service", "install",
                           "--prefix", str(prefix)], capture_output=True, text=True, timeout=120)


def test_units_and_logrotate_file_are_accepted(service_tmp, tmp_path):
    state, prefix = service_tmp / "var", tmp_path / "root"
    result = install(state, prefix)
    assert result.returncode == 0, result.stderr
    units = prefix / "etc/systemd/system"
    assert sorted(p.name for p in units.iterdir()) == sorted(service.UNITS)

    for unit in sorted(units.iterdir()):
        text = unit.read_text()
        assert "$" not in text.replace("$TAWASUL", ""), f"{unit.name}: a placeholder left"
        if unit.suffix == ".service":
            assert re.search(r"(?m)^User=(tawasul|asterisk)$", text), unit.name
            for line in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", "ProtectHome=yes"):
                assert line in text.splitlines(), f"{unit.name}: no {line}"
        if "ExecStart=" in text and "asterisk" not in unit.name:
            assert f"ExecStart={privilege.which_tawasul()} " in text, unit.name
        root = re.search(r"(?m)^RootDirectory=(.+)$", text)
        if root:  # systemd-analyze looks for the binary on the host, ignoring RootDirectory=
            assert (Path(root.group(1)) / "usr/sbin/asterisk").is_file()
            unit.write_text(text.replace("=/usr/sbin/asterisk ", f"={root.group(1)}/usr/sbin/asterisk "))
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                                capture_output=True, text=True, timeout=60)
        assert (verify.returncode, verify.stderr) == (0, ""), f"{unit.name}:\n{verify.stderr}"

    web = (units / "tawasul-web.service").read_text()
    assert f"ReadWritePaths={state.resolve()} " in web and "SupplementaryGroups=asterisk" in web
    asterisk = (units / "tawasul-asterisk.service").read_text()
    assert "-U asterisk -G asterisk" in asterisk and "User=asterisk" in asterisk
    target = (units / "tawasul.target").read_text()
    assert all(name in target for name in service.UNITS[1:])

    rotate = prefix / "etc/logrotate.d/tawasul"
    privilege.secure_state(state)  # as an install into / leaves it: logrotate works in it as tawasul
    check = subprocess.run(["logrotate", "-d", "-s", str(tmp_path / "status"), str(rotate)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "error" not in check.stderr.lower(), check.stderr
    assert "logger reload" in rotate.read_text() and f"{state.resolve()}/log/*.log" in rotate.read_text()


def test_systemd_analyze_refuses_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt setting is reported."""
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nProtectSystm=strict\n")
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert "ProtectSystm" in verify.stderr


def test_install_into_root_needs_root_or_a_prefix(service_tmp):
    (service_tmp / "var").mkdir(mode=0o777)
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                             "import sys; from tawasul.cli import main; sys.exit(main())",
                             "--state-dir", str(service_tmp / "var"), "service", "install"],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 2 and "needs root" in result.stderr, result.stderr

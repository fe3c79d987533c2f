#!/usr/bin/env bash
# Installs the Debian packages Tawasul needs on the host (idempotent; quiet when all are there).
#   install-system.sh run    what running it needs (make run; the default)
#   install-system.sh test   that and what the tests and benchmarks need (make test)
# The Asterisk runtime itself is installed by `tawasul asterisk install` (provisioning/runtime.py).
set -euo pipefail

packages=(
  python3-venv           # the project's virtual environment (and Debian's python3: tests/integration/test_installed_package.py)
  debootstrap            # Asterisk root filesystem where the host has no Asterisk 20+
  espeak-ng sox          # Arabic and English prompts, generated at set-up
  openssl ca-certificates
)
test_packages=(
  postgresql             # the tests run against PostgreSQL as well as SQLite
  baresip-core baresip-ffmpeg  # real SIP video phones for tests (and for the demo's exported phone profiles)
  sip-tester             # SIPp, load benchmarks
  wrk                    # HTTP load benchmarks (benchmarks/web.py)
  nginx                  # the README's HTTPS front for the web, tested (tests/integration/test_https_proxy.py)
  chromium               # browser tests (driven by playwright, never downloaded)
  fonts-noto-core        # Arabic glyphs in Chromium
  systemd logrotate       # `systemd-analyze verify` and `logrotate -d` on the rendered units (tests/integration/test_service_units.py)
  podman runc podman-compose  # the compose stack of docker/, built and run for real (tests/integration/test_compose.py)
)

case "${1:-run}" in
  run) ;;
  test) packages+=("${test_packages[@]}") ;;
  *) echo "usage: $0 [run|test]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

#!/usr/bin/env bash
# Finishes a debootstrapped Debian 12 root filesystem before build-images.sh imports it as the base
# image: the security and update suites, no services started by packages, no recommends, no apt
# lists kept, and the two system users with the ids every image shares (volumes keep one owner).
set -euo pipefail
root=$1
mirror=${MIRROR:-http://deb.debian.org/debian}
security=${mirror%/debian}/debian-security
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90tawasul"
# Asterisk's user and the services' user: the same ids as in Containerfile.asterisk.
chroot "$root" groupadd --system --gid 990 asterisk
chroot "$root" useradd --system --uid 990 --gid asterisk --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin asterisk
chroot "$root" groupadd --system --gid 991 tawasul
chroot "$root" useradd --system --uid 991 --gid tawasul --groups asterisk --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin tawasul
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

#!/usr/bin/env bash
# Builds the images of docker/compose.yaml with podman, from nothing but Debian's mirror and this
# checkout (no image registry is needed):
#
#   tawasul-base      Debian 12 (bookworm) minbase, made by debootstrap and imported
#   tawasul-app       base + Debian's python3 + the Tawasul wheel in a venv (web, FastAGI, call watcher, SMS, migrate)
#   tawasul-postgres  base + Debian's PostgreSQL 15
#   tawasul-asterisk  Asterisk 22 (Debian unstable): the root filesystem `tawasul asterisk install` made, imported
#
# Each image is tagged by a hash of its inputs; an image whose tag exists is not built again, so a
# second run takes seconds. Each is also tagged `latest`. Prints the tags as compose variables
# (TAWASUL_APP_IMAGE=... ) on stdout, progress on stderr. Root only (rootful podman). Safe to run
# twice at once (a lock). Build steps use the host's network: apt reaches the Debian mirror.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
cache=${TAWASUL_CACHE:-/var/cache/tawasul}
sid_root=${TAWASUL_SID_ROOT:-$cache/sid-root}
python=${TAWASUL_BUILD_PYTHON:-/usr/bin/python3}  # the images' Python is Debian 12's: build the wheels with the same

say() { echo "[images] $*" >&2; }
die() { echo "build-images.sh: $*" >&2; exit 2; }
digest() { sha256sum | cut -c1-12; }

[ "$(id -u)" -eq 0 ] || die "run as root (rootful podman)"
command -v podman >/dev/null || die "podman is missing (apt-get install podman runc)"
[ -f "$cache/sid-root.ready" ] || die "no Asterisk root filesystem in $sid_root: run \`tawasul asterisk install\` first"

mkdir -p "$cache"
exec 9>"$cache/build-images.lock"
flock 9

# The Debian mirror apt already uses (deb822 or one-line sources), else deb.debian.org.
mirror=$(sed -nE 's#^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^[:space:]]*/debian)/?([[:space:]].*)?$#\3#p' \
  /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /tmp/tawasul-images.XXXXXX)
cleanup() {  # never delete through a mount debootstrap may have left (its /proc, /sys)
  if grep -q " $work/" /proc/mounts; then say "left $work: something is mounted inside"; else rm -rf "$work"; fi
}
trap cleanup EXIT

forget_older() {  # forget_older REPOSITORY:TAG: the repository's other hash tags (an image in use stays)
  local keep=$1 tag
  for tag in $(podman images --format '{{.Repository}}:{{.Tag}}' "${keep%:*}"); do
    case $tag in "$keep"|*:latest) ;; *) podman rmi "$tag" >/dev/null 2>&1 || true ;; esac
  done
}

build() {  # build TAG CONTAINERFILE CONTEXT [--build-arg ...]
  local tag=$1 file=$2 context=$3; shift 3
  say "building $tag"
  podman build --quiet --network host --pull=never -f "$file" -t "$tag" "$@" "$context" >&2
}

# --- base: Debian 12 minbase ---------------------------------------------------------------------
base=localhost/tawasul-base:$(printf 'bookworm minbase %s %s\n' "$mirror" "$(cat "$here/rootfs-setup.sh")" | digest)
if ! podman image exists "$base"; then
  started=$SECONDS
  say "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  MIRROR=$mirror bash "$here/rootfs-setup.sh" "$work/rootfs"
  tar -C "$work/rootfs" --numeric-owner -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$work/rootfs"
  say "base image in $((SECONDS - started)) s"
fi
podman tag "$base" localhost/tawasul-base:latest
forget_older "$base"

# --- app: the wheel and its dependencies, built here, installed there without any index -----------
sources=(setup.cfg setup.py pyproject.toml MANIFEST.in README.md tawasul agi web provisioning asterisk_conf)
source_hash=$(cd "$repo" && git ls-files -co --exclude-standard -z -- "${sources[@]}" | sort -z \
  | xargs -0 sha256sum | sha256sum)
app=localhost/tawasul-app:$( { echo "$base $source_hash"; cat "$here/Containerfile.app" "$here/tawasul-container"; } | digest)
if ! podman image exists "$app"; then
  started=$SECONDS
  say "building the Tawasul wheel and its dependencies' wheels with $python"
  mkdir -p "$work/app/src"
  (cd "$repo" && git ls-files -co --exclude-standard -z -- "${sources[@]}" | tar --null -T - -c) | tar -C "$work/app/src" -x
  "$python" -m venv "$work/venv"
  "$work/venv/bin/pip" wheel -q --wheel-dir "$work/app/wheels" "$work/app/src" >&2
  rm -rf "$work/app/src"
  cp "$here/tawasul-container" "$work/app/"
  build "$app" "$here/Containerfile.app" "$work/app" --build-arg "BASE=$base"
  say "app image in $((SECONDS - started)) s"
fi
podman tag "$app" localhost/tawasul-app:latest
forget_older "$app"

# --- postgres -------------------------------------------------------------------------------------
postgres=localhost/tawasul-postgres:$( { echo "$base"; cat "$here/Containerfile.postgres" "$here/postgres-entrypoint"; } | digest)
if ! podman image exists "$postgres"; then
  started=$SECONDS
  build "$postgres" "$here/Containerfile.postgres" "$here" --build-arg "BASE=$base"
  say "postgres image in $((SECONDS - started)) s"
fi
podman tag "$postgres" localhost/tawasul-postgres:latest
forget_older "$postgres"

# --- asterisk: the cached root filesystem (without other instances' folders or generated prompts) --
root_hash=$( { cat "$cache/sid-root.ready"; stat -c %Y "$cache/sid-root.ready"; } | digest)
asterisk_root=localhost/tawasul-asterisk-root:$root_hash
if ! podman image exists "$asterisk_root"; then
  started=$SECONDS
  if grep -q " $sid_root/" /proc/mounts; then
    say "note: something is mounted under $sid_root; only its files are taken"
  fi
  say "importing $sid_root"
  tar -C "$sid_root" --numeric-owner --one-file-system \
    --exclude=./srv/tawasul --exclude=./usr/share/asterisk/sounds/ar \
    --exclude=./usr/share/asterisk/sounds/en_US_f_Allison/tawasul --exclude='./proc/*' -c . \
    | podman import --quiet --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' - "$asterisk_root" >/dev/null
  say "Asterisk root imported in $((SECONDS - started)) s"
fi
forget_older "$asterisk_root"
asterisk=localhost/tawasul-asterisk:$( { echo "$asterisk_root"; cat "$here/Containerfile.asterisk" "$here/asterisk-entrypoint"; } | digest)
if ! podman image exists "$asterisk"; then
  started=$SECONDS
  build "$asterisk" "$here/Containerfile.asterisk" "$here" --build-arg "ROOT=$asterisk_root"
  say "asterisk image in $((SECONDS - started)) s"
fi
podman tag "$asterisk" localhost/tawasul-asterisk:latest
forget_older "$asterisk"

echo "TAWASUL_APP_IMAGE=$app"
echo "TAWASUL_POSTGRES_IMAGE=$postgres"
echo "TAWASUL_ASTERISK_IMAGE=$asterisk"

#!/usr/bin/env bash
# Builds a minimal Debian image with python3 (and venv, for pip) without any
# container registry: debootstrap from a Debian mirror, then `docker import`.
# For air-gapped machines and CI; with a registry, the Dockerfiles' default
# base (an official Python slim image) needs none of this.
#
#   compose/build-base-image.sh [TAG]        (default shiftlab/python-base:local)
#
# Environment:
#   DEBIAN_MIRROR   the mirror to bootstrap from (default: this machine's own
#                   apt source, so the script works wherever apt does)
#   DEBIAN_SUITE    default bookworm (its python3 is 3.11, as the wheelhouse)
#   REBUILD=1       build even if TAG exists (by default an existing image is kept)
set -euo pipefail

TAG="${1:-shiftlab/python-base:local}"
SUITE="${DEBIAN_SUITE:-bookworm}"

if [[ "${REBUILD:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists (REBUILD=1 to build it again)"
    exit 0
fi

host_mirror() {
    # deb822 sources first (Debian 12+), then the one-line format.
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
        uri=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit} $1 == "deb" && $2 ~ /^\[/ {print $3; exit}' \
            /etc/apt/sources.list)
    fi
    # A security mirror cannot bootstrap a release: take the main archive.
    echo "${uri%-security}"
}

MIRROR="${DEBIAN_MIRROR:-$(host_mirror)}"
if [[ -z "$MIRROR" ]]; then
    echo "no Debian mirror: set DEBIAN_MIRROR (this machine's apt sources name none)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "debootstrap is missing: apt-get install debootstrap" >&2
    exit 1
fi

ROOT=$(mktemp -d /tmp/shiftlab-rootfs.XXXXXX)
cleanup() {
    # debootstrap may leave /proc or /sys mounted inside the tree on failure.
    for m in proc sys dev/pts dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT

echo "== debootstrap $SUITE (minbase + python3) into $ROOT"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
    tail -30 "$ROOT.log" >&2
    rm -f "$ROOT.log"
    exit 1
}
rm -f "$ROOT.log"

# What an image never needs: package lists, caches, documentation, man pages.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* "$ROOT"/var/cache/debconf/*-old \
    "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/var/log/* \
    "$ROOT"/usr/share/locale/*
find "$ROOT"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +

echo "== docker import -> $TAG"
tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "shiftlab: debootstrap $SUITE minbase + python3" \
    - "$TAG" >/dev/null
docker image ls "$TAG"

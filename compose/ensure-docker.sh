#!/usr/bin/env bash
# Makes a Docker engine answer on this machine (CI, or a Debian machine as
# root): installs Debian's docker.io (and docker-compose, debootstrap) when
# missing, starts dockerd in the background when no engine answers, and
# waits until one does. Exits non-zero, with dockerd's last words, if it
# cannot. dockerd's output goes to $DOCKERD_LOG (/tmp/shiftlab-dockerd.log).
set -euo pipefail

LOG="${DOCKERD_LOG:-/tmp/shiftlab-dockerd.log}"
WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})) && [[ $(id -u) != 0 ]]; then
    echo "== missing ${need[*]}: install them (apt-get install ${need[*]}) or run this as root" >&2
    exit 1
elif ((${#need[@]})); then
    echo "== apt-get install ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    echo "== docker: an engine answers ($(docker version --format '{{.Server.Version}}'))"
    exit 0
fi

echo "== docker: starting dockerd (log: $LOG)"
nohup dockerd >"$LOG" 2>&1 </dev/null &
echo $! >/tmp/shiftlab-dockerd.pid
for _ in $(seq "$WAIT_SECONDS"); do
    if docker info >/dev/null 2>&1; then
        echo "== docker: dockerd $(docker version --format '{{.Server.Version}}') answers"
        exit 0
    fi
    if ! kill -0 "$(cat /tmp/shiftlab-dockerd.pid)" 2>/dev/null; then
        break
    fi
    sleep 1
done
echo "== docker: no engine answers; dockerd's last lines:" >&2
tail -20 "$LOG" >&2
exit 1

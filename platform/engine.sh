#!/usr/bin/env bash
# Make sure a Docker engine answers. On Debian/Ubuntu as root with no engine, install
# Debian's docker.io, docker-compose and debootstrap and start dockerd in the background,
# with its pid file and log under the project's state folder. Elsewhere, say what to do.
set -euo pipefail
state="${STATE_DIR:-.state}"
mkdir -p "$state"

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -r /etc/debian_version ]; then
  echo "engine: no Docker engine answers. Install Docker (https://docs.docker.com/engine/install/) and start it, then run make again." >&2
  exit 1
fi

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "engine: installing ${need[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$state/apt.log" 2>&1 \
    || { echo "engine: apt-get install failed; see $state/apt.log" >&2; exit 1; }
fi

echo "engine: starting dockerd (log: $state/dockerd.log)"
nohup dockerd --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "engine: dockerd is up"; exit 0; }
  sleep 0.5
done
echo "engine: dockerd did not answer within 30 s; see $state/dockerd.log" >&2
exit 1

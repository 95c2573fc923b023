#!/usr/bin/env bash
# docker compose (v2) when present, else docker-compose (v1.29, Debian 12).
#
# The compose project is named once per checkout (adpipe-<6 hex>, kept in .state/), so two
# clones on one machine never share volumes: a clone's data always matches its own .env
# (whose passwords are generated per clone). One stack runs at a time: they share ports.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .state
if [ ! -s .state/compose-project ]; then
  echo "adpipe-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')" >.state/compose-project
fi
project="$(cat .state/compose-project)"
# The group that owns the Docker socket: the one container that starts job containers (the
# scheduler) joins it, instead of running as root.
DOCKER_GID="$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 0)"
export DOCKER_GID
if docker compose version >/dev/null 2>&1; then
  exec docker compose -p "$project" -f docker-compose.yml "$@"
fi
exec docker-compose -p "$project" -f docker-compose.yml "$@"

#!/usr/bin/env bash
# docker compose (v2) when present, else docker-compose (v1.29, Debian 12), for project adpipe.
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  exec docker compose -p adpipe -f docker-compose.yml "$@"
fi
exec docker-compose -p adpipe -f docker-compose.yml "$@"

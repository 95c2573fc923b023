#!/usr/bin/env bash
# docker compose: Compose v2, the one tested path (`make engine` installs the plugin where it
# is missing; Debian 12 packages only v1.29, which this project no longer uses).
#
# The compose project is named once per checkout (COMPOSE_PROJECT_NAME=adpipe-<6 hex> in .env,
# which plain `docker compose` reads too), so two clones on one machine never share volumes:
# a clone's data always matches its own .env (whose passwords are generated per clone). One
# stack runs at a time: they share ports. EXECUTOR=celery (or EXECUTOR in .env) adds the
# celery profile.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] || PYTHONPATH=jobs/adpipe python3 platform/env.py >/dev/null
project="$(sed -n 's/^COMPOSE_PROJECT_NAME=//p' .env | tail -1)"
[ -n "$project" ] || { echo "compose: .env has no COMPOSE_PROJECT_NAME; run \`make env\`" >&2; exit 2; }
executor="${EXECUTOR:-$(sed -n 's/^EXECUTOR=//p' .env | tail -1)}"
case "${executor:-local}" in
  local) export AIRFLOW_EXECUTOR=LocalExecutor; profiles=() ;;
  celery) export AIRFLOW_EXECUTOR=CeleryExecutor; profiles=(--profile celery) ;;
  *) echo "compose: EXECUTOR must be local or celery, not '$executor'" >&2; exit 2 ;;
esac
# The group that owns the Docker socket: the one container that starts job containers (the
# scheduler) joins it, instead of running as root.
DOCKER_GID="$(stat -c %g /var/run/docker.sock 2>/dev/null || stat -f %g /var/run/docker.sock 2>/dev/null || echo 0)"
export DOCKER_GID
if ! docker compose version >/dev/null 2>&1; then
  echo "compose: Docker Compose v2 is missing (\`docker compose version\` fails); \`make engine\` installs it" >&2
  exit 1
fi
# env files read as written (`format: raw`, as docker run --env-file reads them) need 2.30
version="$(docker compose version --short 2>/dev/null | sed 's/^v//')"
if [ "$(printf '%s\n2.30.0\n' "$version" | sort -V | head -1)" != 2.30.0 ]; then
  echo "compose: Docker Compose $version is older than 2.30, which the stack needs (env files read as written); \`make engine\` installs a newer one" >&2
  exit 1
fi
# TLS=1 in .env (`make start TLS=1`): the servers present `make certs`' certificates and the
# job containers hold its CA (docker-compose.tls.yml)
files=(-f docker-compose.yml)
[ "$(sed -n 's/^TLS=//p' .env | tail -1)" != 1 ] || files+=(-f docker-compose.tls.yml)
exec docker compose -p "$project" "${files[@]}" ${profiles[@]+"${profiles[@]}"} "$@"

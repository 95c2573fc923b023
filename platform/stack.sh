#!/usr/bin/env bash
# The stack's life cycle: `stack.sh start` (idempotent; checks its ports first, then waits
# until every service is healthy, saying which are not yet), `stack.sh stop`, `stack.sh
# status`, `stack.sh running` (exit 0 when it runs), `stack.sh wait SERVICE...` (until each
# is healthy again). EXECUTOR=celery adds Redis and two
# Celery workers (the celery profile); EXECUTOR=local (the default) removes them.
set -euo pipefail
cd "$(dirname "$0")/.."
compose() { bash platform/compose.sh "$@"; }
# .env's settings, except these, where a value in the environment wins (the Celery tier
# starts its stack with shorter timers, and a webhook of its own, this way)
overridable=(EXECUTOR TASK_HEARTBEAT_TIMEOUT JOB_RETRY_DELAY_SECONDS API_LOAD_DEADLINE_MINUTES
  ALERT_WEBHOOK ALARM_NO_LOAD_MINUTES)
given=()
for name in "${overridable[@]}"; do [ -z "${!name:-}" ] || given+=("$name=${!name}"); done
set -a; . ./.env; set +a
for setting in ${given[@]+"${given[@]}"}; do export "${setting?}"; done
EXECUTOR="${EXECUTOR:-local}"
export EXECUTOR
services=(postgres s3 ad-api airflow-api-server airflow-scheduler airflow-dag-processor airflow-triggerer
  health prometheus alertmanager)
celery_services=(redis airflow-worker-1 airflow-worker-2)
[ "$EXECUTOR" = celery ] && services+=("${celery_services[@]}")
WAIT_SECONDS="${STACK_WAIT_SECONDS:-300}"

container() {  # container <service>: its running container's id, by the labels compose gives it
  # (`docker compose ps` would read the whole project: a third of a second of CPU a call)
  docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter "label=com.docker.compose.service=$1" 2>/dev/null | head -1
}

health() {  # health <service>: healthy | starting | unhealthy | exited | missing
  local id
  id="$(container "$1")"
  [ -n "$id" ] || { echo missing; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing
}

ready() {  # ready <service>: Docker calls it healthy, or its compose healthcheck passes now
  # (Docker runs most checks every 30 s only: docker-compose.yml's x-rare-check), within the
  # check's own timeout
  local id arg
  id="$(container "$1")"
  [ -n "$id" ] || return 1
  case "$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null)" in
    "running healthy") return 0 ;;
    "running "*) ;;
    *) return 1 ;;
  esac
  local argv=()  # the check's timeout in seconds, then its command
  while IFS= read -r -d '' arg; do argv+=("$arg"); done < <(
    docker inspect -f '{{json .Config.Healthcheck}}' "$id" | python3 -c 'import json, sys
check = json.load(sys.stdin)
test = check["Test"]
argv = [str(max(1, int(check.get("Timeout") or 30e9) // 10**9))]
argv += test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
sys.stdout.write("".join(a + "\0" for a in argv))')
  [ ${#argv[@]} -gt 1 ] || return 1
  python3 platform/bounded.py "${argv[0]}" docker exec "$id" "${argv[@]:1}" >/dev/null 2>&1
}

wait_ready() {  # wait_ready <seconds> <service>...: all ready at once within the bound, saying who is not yet
  local bound=$1 t0=$SECONDS said="" now s
  shift
  while true; do
    local pending=()
    for s in "$@"; do ready "$s" || pending+=("$s"); done
    [ ${#pending[@]} -gt 0 ] || return 0
    if [ $((SECONDS - t0)) -ge "$bound" ]; then
      echo "stack: not healthy after $bound s: ${pending[*]}; see \`make logs SERVICE=${pending[0]}\`" >&2
      return 1
    fi
    now="${pending[*]}"
    if [ "$now" != "$said" ] && [ $((SECONDS - t0)) -ge 10 ]; then
      echo "stack: $((SECONDS - t0)) s, waiting for: $now"; said="$now"
    fi
    sleep 1
  done
}

address() {
  case "$1" in
    postgres) echo "127.0.0.1:$POSTGRES_PORT" ;;
    s3) echo "$S3_ENDPOINT_URL" ;;
    ad-api) echo "$AD_API_URL" ;;
    airflow-api-server) echo "$AIRFLOW_URL (login $AIRFLOW_USER)" ;;
    airflow-scheduler) echo "127.0.0.1:8974/health" ;;
    health) echo "http://127.0.0.1:$HEALTH_PORT (bearer HEALTH_TOKEN)" ;;
    prometheus) echo "http://127.0.0.1:$PROMETHEUS_PORT (login adpipe)" ;;
    alertmanager) echo "http://127.0.0.1:$ALERTMANAGER_PORT (login adpipe)" ;;
    *) echo "-" ;;
  esac
}

ports() {  # ports <service>: the TCP ports it listens on (all on 127.0.0.1)
  case "$1" in
    postgres) echo "$POSTGRES_PORT" ;;
    s3) echo "$S3_PORT" ;;  # SeaweedFS's other ports stay inside its container
    ad-api) echo "$AD_API_PORT" ;;
    airflow-api-server) echo "$AIRFLOW_PORT" ;;
    airflow-scheduler) echo 8974 ;;
    redis) echo "$REDIS_PORT" ;;
    health) echo "$HEALTH_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
    alertmanager) echo "$ALERTMANAGER_PORT" ;;
  esac
}

holder() {  # holder <port>: who listens there, as ss names it, else another checkout's stack
  local who="" others
  if command -v ss >/dev/null; then
    who="$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:((.*))' | head -1 | sed 's/users:((\(.*\)))/\1/' || true)"
  fi
  if [ -z "$who" ]; then  # host-network containers publish no ports; name the other adpipe projects running
    others="$(docker ps --format '{{.Label "com.docker.compose.project"}}' 2>/dev/null | grep '^adpipe-' | grep -vx "${COMPOSE_PROJECT_NAME:-}" | sort -u | tr '\n' ' ' || true)"
    if [ -n "$others" ]; then
      who="a process of another adpipe stack (${others% }: \`make stop\` in its checkout, or \`docker rm -f \$(docker ps -q --filter label=com.docker.compose.project=${others%% *})\`)"
    fi
  fi
  echo "${who:-an unknown process (see \`ss -ltnp\`)}"
}

check_ports() {  # a port held by anything but this stack's own service fails the start now
  local busy=() s p
  for s in "${services[@]}"; do
    case "$(health "$s")" in healthy|starting|unhealthy|running|restarting) continue ;; esac
    for p in $(ports "$s"); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        busy+=("127.0.0.1:$p (wanted by $s) is held by $(holder "$p")")
      fi
    done
  done
  if [ ${#busy[@]} -gt 0 ]; then
    printf 'stack: cannot start, a port is busy:\n' >&2
    printf '  %s\n' "${busy[@]}" >&2
    echo "stop what holds it (another checkout's stack: \`make stop\` there), or change the port in .env" >&2
    exit 1
  fi
}

host_network() {  # a container on the host network must reach, and be reached on, 127.0.0.1
  local port="${HOST_NETWORK_PROBE_PORT:-18999}" reach="${HOST_NETWORK_REACH_PORT:-}" cid ok=0 line
  reach="${reach:-$port}"
  cid="$(docker run -d --rm --network host --entrypoint python3 adpipe/ad-api:dev -c "
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $port))
s.listen(1)
s.settimeout(15)
c, _ = s.accept()
c.sendall(b'adpipe-host-network\\n')
c.close()")" || { echo "stack: docker run failed; is the engine up? (make engine)" >&2; exit 1; }
  for _ in $(seq 1 20); do
    line="$( (exec 3<>"/dev/tcp/127.0.0.1/$reach" && read -r -t 2 l <&3 && echo "$l") 2>/dev/null || true)"
    [ "$line" = adpipe-host-network ] && { ok=1; break; }
    sleep 0.25
  done
  docker rm -f "$cid" >/dev/null 2>&1 || true
  if [ "$ok" != 1 ]; then
    echo "stack: a container on the host network did not answer on this host's 127.0.0.1:$reach." >&2
    echo "  Every service here uses host networking. Docker Desktop supports it from 4.34, switched on in" >&2
    echo "  Settings > Resources > Network > \"Enable host networking\"; turn it on, then run make start again." >&2
    exit 1
  fi
}

case "${1:-status}" in
  start)
    t0=$SECONDS
    check_ports
    host_network
    if [ "$EXECUTOR" != celery ]; then  # a previous celery start's broker and workers go
      bash platform/compose.sh --profile celery rm -s -f "${celery_services[@]}" >/dev/null 2>&1 || true
    fi
    echo "stack: starting (executor: $EXECUTOR)"
    compose up -d --remove-orphans >.state/compose-up.log 2>&1 || { cat .state/compose-up.log >&2; exit 1; }
    wait_ready "$((WAIT_SECONDS - (SECONDS - t0)))" "${services[@]}" || exit 1
    echo "stack: healthy in $((SECONDS - t0)) s; Airflow UI $AIRFLOW_URL (login $AIRFLOW_USER / $AIRFLOW_PASSWORD)" ;;
  wait)  # wait <service>...: each ready (a service started again by hand, by a test)
    shift
    [ $# -gt 0 ] || { echo "usage: stack.sh wait SERVICE..." >&2; exit 2; }
    wait_ready "$WAIT_SECONDS" "$@" ;;
  stop)
    bash platform/compose.sh --profile celery down --remove-orphans 2>/dev/null || compose down --remove-orphans ;;
  running)
    [ "$(health airflow-api-server)" = healthy ] ;;
  status)
    printf '%-24s %-10s %s\n' SERVICE HEALTH ADDRESS
    for s in "${services[@]}"; do
      h="$(health "$s")"
      if [ "$h" != healthy ] && ready "$s"; then h=healthy; fi  # Docker's next check is up to 30 s away
      printf '%-24s %-10s %s\n' "$s" "$h" "$(address "$s")"
    done ;;
  *) echo "usage: stack.sh start|stop|status|running|wait SERVICE..." >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The stack's life cycle: `stack.sh start` (idempotent; waits until every service is
# healthy), `stack.sh stop`, `stack.sh status`, `stack.sh running` (exit 0 when it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
compose() { bash platform/compose.sh "$@"; }
services=(postgres s3 ad-api airflow-api-server airflow-scheduler airflow-dag-processor airflow-triggerer)
set -a; . ./.env; set +a

health() {  # health <service>: healthy | starting | unhealthy | exited | missing
  local id
  id="$(compose ps -q "$1" 2>/dev/null || true)"
  [ -n "$id" ] || { echo missing; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing
}

address() {
  case "$1" in
    postgres) echo "127.0.0.1:$POSTGRES_PORT" ;;
    s3) echo "$S3_ENDPOINT_URL" ;;
    ad-api) echo "$AD_API_URL" ;;
    airflow-api-server) echo "$AIRFLOW_URL (login $AIRFLOW_USER)" ;;
    airflow-scheduler) echo "127.0.0.1:8974/health" ;;
    *) echo "-" ;;
  esac
}

case "${1:-status}" in
  start)
    t0=$SECONDS
    compose up -d --remove-orphans >.state/compose-up.log 2>&1 || { cat .state/compose-up.log >&2; exit 1; }
    for _ in $(seq 1 240); do
      pending=()
      for s in "${services[@]}"; do [ "$(health "$s")" = healthy ] || pending+=("$s"); done
      if [ ${#pending[@]} -eq 0 ]; then
        echo "stack: healthy in $((SECONDS - t0)) s; Airflow UI $AIRFLOW_URL (login $AIRFLOW_USER / $AIRFLOW_PASSWORD)"
        exit 0
      fi
      sleep 1
    done
    echo "stack: not healthy after 240 s: ${pending[*]}; see \`make logs\`" >&2
    exit 1 ;;
  stop)
    compose down --remove-orphans ;;
  running)
    [ "$(health airflow-api-server)" = healthy ] ;;
  status)
    printf '%-24s %-10s %s\n' SERVICE HEALTH ADDRESS
    for s in "${services[@]}"; do printf '%-24s %-10s %s\n' "$s" "$(health "$s")" "$(address "$s")"; done ;;
  *) echo "usage: stack.sh start|stop|status|running" >&2; exit 2 ;;
esac

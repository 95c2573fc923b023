#!/usr/bin/env bash
# adpipe-monitor prometheus|alertmanager: write the server's configuration from the
# environment (templates in /opt/adpipe/monitor, @NAME@ replaced), then run it on 127.0.0.1.
# Secrets reach the servers as files (mode 0600), never as arguments: the health service's
# token, the password both servers ask for (basic auth: web.yml holds its bcrypt hash).
set -euo pipefail
umask 077
conf="${MONITOR_CONF_DIR:-/tmp/adpipe-monitor}"
mkdir -p "$conf"
: "${MONITOR_PASSWORD:?}" "${ALERTMANAGER_PORT:?}"
printf '%s' "$MONITOR_PASSWORD" >"$conf/monitor-password"
# htpasswd reads the password from standard input (-i): it never shows in a process list
hash="$(printf '%s' "$MONITOR_PASSWORD" | htpasswd -niB adpipe | cut -d: -f2-)"
printf 'basic_auth_users:\n  adpipe: %s\n' "$hash" >"$conf/web.yml"

# the rhythm (MONITOR_INTERVAL_SECONDS, 15 unless set): Prometheus scrapes and evaluates at
# it, a scrape waits at most 10 s, Alertmanager waits up to 10 s for a group's first alert
# and sends its changes (a resolved alert) at twice the interval
interval="${MONITOR_INTERVAL_SECONDS:-15}"
case "$interval" in ''|*[!0-9]*|0) echo "monitor: MONITOR_INTERVAL_SECONDS must be a whole number of seconds, at least 1" >&2; exit 2 ;; esac
export MONITOR_INTERVAL_SECONDS="$interval" SCRAPE_TIMEOUT_SECONDS="$((interval < 10 ? interval : 10))"
export GROUP_WAIT_SECONDS="$((interval < 10 ? interval : 10))" GROUP_INTERVAL_SECONDS="$((2 * interval))"

fill() {  # fill <template> <target>: each @NAME@ replaced with $NAME
  awk '{
    while (match($0, /@[A-Z][A-Z0-9_]*@/)) {
      name = substr($0, RSTART + 1, RLENGTH - 2)
      $0 = substr($0, 1, RSTART - 1) ENVIRON[name] substr($0, RSTART + RLENGTH)
    }
    print }' "$1" >"$2"
}

case "${1:-prometheus}" in
  prometheus)
    : "${HEALTH_PORT:?}" "${HEALTH_TOKEN:?}" "${PROMETHEUS_PORT:?}" "${ALARM_NO_LOAD_MINUTES:?}"
    printf '%s' "$HEALTH_TOKEN" >"$conf/health-token"
    ALARM_NO_LOAD_SECONDS="$(awk -v m="$ALARM_NO_LOAD_MINUTES" 'BEGIN { printf "%d", m * 60 }')"
    [ "$ALARM_NO_LOAD_SECONDS" -ge 30 ] || { echo "monitor: ALARM_NO_LOAD_MINUTES must be at least 0.5" >&2; exit 2; }
    # the capacity alarm's threshold, in days (30 unless set)
    S3_ALERT_DAYS_LEFT="${S3_ALERT_DAYS_LEFT:-30}"
    case "$S3_ALERT_DAYS_LEFT" in ''|*[!0-9]*) echo "monitor: S3_ALERT_DAYS_LEFT must be a whole number of days" >&2; exit 2 ;; esac
    export ALARM_NO_LOAD_SECONDS S3_ALERT_DAYS_LEFT MONITOR_CONF_DIR="$conf"
    fill /opt/adpipe/monitor/prometheus.yml "$conf/prometheus.yml"
    fill /opt/adpipe/monitor/rules.yml "$conf/rules.yml"
    exec prometheus --config.file="$conf/prometheus.yml" --web.config.file="$conf/web.yml" \
      --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
      --storage.tsdb.path=/var/lib/prometheus/metrics2 --storage.tsdb.retention.time=15d ;;
  alertmanager)
    if [ -n "${ALERT_WEBHOOK:-}" ]; then
      export RECEIVER_CONFIGS="webhook_configs: [{url: '$ALERT_WEBHOOK', send_resolved: true}]"
    else
      export RECEIVER_CONFIGS=""  # no webhook: the alert is only in Alertmanager (and its log)
    fi
    fill /opt/adpipe/monitor/alertmanager.yml "$conf/alertmanager.yml"
    # no cluster port (one instance); the notification log is kept as long as an alert may
    # repeat, so one outage is one alert however long it lasts (a year)
    exec prometheus-alertmanager --config.file="$conf/alertmanager.yml" \
      --web.config.file="$conf/web.yml" --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" \
      --cluster.listen-address= --storage.path=/var/lib/prometheus/alertmanager \
      --data.retention=8760h ;;
  *) echo "usage: adpipe-monitor prometheus|alertmanager" >&2; exit 2 ;;
esac

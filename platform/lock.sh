#!/usr/bin/env bash
# The images' pinned requirements, derived from their declared inputs:
#   platform/standins/airflow/requirements.txt  from uv.lock (the host venv's Airflow)
#   platform/s3/requirements.txt                from platform/s3/requirements.in
#   jobs/*/requirements.txt                     from jobs/*/requirements.in
# The adpipe packages (jobs/*/pyproject.toml, local paths) are never emitted: the images put
# their code on PYTHONPATH.
# `lock.sh write` regenerates them; `lock.sh check` fails when one differs.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.state/uv/bin/uv
mode="${1:-check}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

render() {  # render <target> : print what the pinned file should hold
  case "$1" in
    platform/standins/airflow/requirements.txt)
      "$uv" export --frozen --no-default-groups --no-hashes --no-emit-project --no-emit-local \
        --no-header --no-annotate ;;
    *)
      local input="${1%.txt}.in"
      "$uv" pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
        --no-header --no-annotate --constraint <("$uv" export --frozen --no-hashes --no-header --no-annotate --no-emit-project --no-emit-local) "$input" ;;
  esac
}

status=0
for target in platform/standins/airflow/requirements.txt platform/s3/requirements.txt \
              jobs/adpipe/requirements.txt jobs/extract_backup/requirements.txt \
              jobs/load/requirements.txt jobs/archive/requirements.txt; do
  render "$target" >"$tmp/out"
  if [ "$mode" = write ]; then
    cp "$tmp/out" "$target"; echo "lock: wrote $target"
  elif ! diff -q "$tmp/out" "$target" >/dev/null 2>&1; then
    echo "lock: $target does not match its inputs; run \`make lock\`" >&2; status=1
  fi
done
exit $status

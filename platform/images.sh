#!/usr/bin/env bash
# Build the project's images: `images.sh platform` (Airflow, PostgreSQL, S3, ad API),
# `images.sh jobs` (the job images), `images.sh all`.
#
# Base images come from a registry when one answers (the public defaults in each Dockerfile);
# otherwise from local stand-ins built from Debian packages on a debootstrap base. Force a path
# with IMAGE_SOURCE=registry or IMAGE_SOURCE=debian. Builds trust the host's CA bundle when
# there is one (networks that intercept HTTPS); verification is never turned off.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
# the git revision the job images are built from (-dirty with uncommitted changes under jobs/)
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- jobs 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
ca_bundle="${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

build() {  # build <tag> <context> <dockerfile> [docker build args...]
  local tag="$1" context="$2" dockerfile="$3"; shift 3
  local start=$SECONDS log=".state/build-${tag//[\/:]/_}.log"
  if ! docker build -q -t "$tag" -f "$dockerfile" "$@" "$context" >"$log" 2>&1; then
    echo "images: building $tag failed:" >&2; tail -30 "$log" >&2; return 1
  fi
  echo "images: built $tag ($((SECONDS - start)) s)"
}

ca_into() {  # ca_into <context>...: the host's CA bundle (or an empty file) for builds that trust it
  local context
  for context in "$@"; do
    if [ -s "$ca_bundle" ]; then cp "$ca_bundle" "$context/build-ca.crt"; else : >"$context/build-ca.crt"; fi
  done
}

in_parallel() {  # in_parallel <function>...: run each in the background; fail when one fails
  local pids=() pid rc=0
  for f in "$@"; do "$f" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}

choose_source() {
  local source="${IMAGE_SOURCE:-auto}"
  if [ "$source" = auto ]; then
    if python3 platform/bounded.py 60 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
      source=registry
    else
      source=debian
    fi
  fi
  case "$source" in
    registry)
      echo "images: a registry answers; using the public base images" >&2
      PY_BASE=python:3.11-slim-bookworm
      AIRFLOW_BASE=apache/airflow:3.3.2-python3.11
      PG_BASE=postgres:15-bookworm
      REDIS_BASE=redis:7.2-bookworm
      DEBIAN_BASE=debian:bookworm-slim
      STANDINS=0 ;;
    debian)
      echo "images: no registry answers; building stand-in base images from Debian packages" >&2
      bash platform/base.sh
      PY_BASE=adpipe/python-standin:3.11-bookworm
      # tagged by its requirements, so a changed lock builds a new one
      AIRFLOW_BASE="adpipe/airflow-standin:3.3.2-$(python3 -c 'import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:12])' platform/standins/airflow/requirements.txt)"
      PG_BASE=adpipe/postgres-standin:15
      REDIS_BASE=adpipe/redis-standin:7
      DEBIAN_BASE=adpipe/debian:bookworm
      STANDINS=1 ;;
    *) echo "images: IMAGE_SOURCE must be auto, registry or debian" >&2; exit 2 ;;
  esac
}

have() { docker image inspect "$1" >/dev/null 2>&1; }
standin() {  # standin <tag> <folder>: build a stand-in base unless it is there (registry: nothing)
  [ "$STANDINS" = 1 ] || return 0
  have "$1" || build "$1" "platform/standins/$2" "platform/standins/$2/Dockerfile" "${@:3}"
}

# Each chain builds its images in order; independent chains build at the same time (the
# engine's builder runs them side by side; on 2 cores this halves a first build).
airflow_chain() {
  standin "$AIRFLOW_BASE" airflow --build-arg "BASE_IMAGE=$PY_BASE" &&
    build adpipe/airflow:dev platform/airflow platform/airflow/Dockerfile --build-arg "BASE_IMAGE=$AIRFLOW_BASE"
}
postgres_chain() {
  standin "$PG_BASE" postgres &&
    build adpipe/postgres:dev platform/postgres platform/postgres/Dockerfile --build-arg "BASE_IMAGE=$PG_BASE"
}
redis_chain() {
  standin "$REDIS_BASE" redis &&
    build adpipe/redis:dev platform/redis platform/redis/Dockerfile --build-arg "BASE_IMAGE=$REDIS_BASE"
}
# Prometheus and Alertmanager: Debian's packages on Debian's base either way
monitor_image() {
  build adpipe/monitor:dev platform/monitor platform/monitor/Dockerfile --build-arg "BASE_IMAGE=$DEBIAN_BASE"
}
s3_image() { build adpipe/s3:dev platform/s3 platform/s3/Dockerfile --build-arg "BASE_IMAGE=$PY_BASE"; }
ad_api_image() {
  build adpipe/ad-api:dev dags/api_load/scripts platform/ad-api/Dockerfile --build-arg "BASE_IMAGE=$PY_BASE"
}
job() {  # job <name>: the job stage of jobs/Dockerfile (package jobs/<name>/adpipe_<name>), tagged :dev and with the git revision
  local tags=()  # a docker tag cannot hold the version's "+"
  [ "$revision" = unknown ] || tags+=(-t "adpipe/$1:$revision")
  build "adpipe/$1:dev" jobs jobs/Dockerfile --target job --build-arg "BASE_IMAGE=$PY_BASE" \
    --build-arg "JOB=$1" \
    --build-arg "REVISION=$revision" --build-arg "VERSION=$version+$revision" ${tags[@]+"${tags[@]}"}
}
extract_job() { job extract_backup; }
load_job() { job load; }
archive_job() { job archive; }
# the shared base once (its layers are then cached), then the three jobs side by side
jobs_chain() {
  build adpipe/job-base:dev jobs jobs/Dockerfile --target base --build-arg "BASE_IMAGE=$PY_BASE" &&
    in_parallel extract_job load_job archive_job
}
python_chain() {  # everything on the Python base
  standin "$PY_BASE" python || return 1
  local parts=()
  if [ "$what" = platform ] || [ "$what" = all ]; then parts+=(airflow_chain s3_image ad_api_image); fi
  if [ "$what" = jobs ] || [ "$what" = all ]; then parts+=(jobs_chain); fi
  in_parallel "${parts[@]}"
}

mkdir -p .state
choose_source
ca_into jobs platform/s3 platform/standins/airflow
chains=(python_chain)
if [ "$what" = platform ] || [ "$what" = all ]; then chains+=(postgres_chain redis_chain monitor_image); fi
in_parallel "${chains[@]}" || exit 1

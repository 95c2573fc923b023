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
  local start=$SECONDS
  if grep -q build-ca.crt "$dockerfile"; then
    if [ -s "$ca_bundle" ]; then cp "$ca_bundle" "$context/build-ca.crt"; else : >"$context/build-ca.crt"; fi
  fi
  if ! docker build -q -t "$tag" -f "$dockerfile" "$@" "$context" >.state/build.log 2>&1; then
    echo "images: building $tag failed:" >&2; tail -30 .state/build.log >&2; exit 1
  fi
  echo "images: built $tag ($((SECONDS - start)) s)"
}

choose_source() {
  local source="${IMAGE_SOURCE:-auto}"
  if [ "$source" = auto ]; then
    if timeout 60 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
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
      REDIS_BASE=redis:7.2-bookworm ;;
    debian)
      echo "images: no registry answers; building stand-in base images from Debian packages" >&2
      bash platform/base.sh
      PY_BASE=adpipe/python-standin:3.11-bookworm
      # tagged by its requirements, so a changed lock builds a new one
      AIRFLOW_BASE="adpipe/airflow-standin:3.3.2-$(sha256sum platform/standins/airflow/requirements.txt | cut -c1-12)"
      PG_BASE=adpipe/postgres-standin:15
      REDIS_BASE=adpipe/redis-standin:7
      have "$PY_BASE" || build "$PY_BASE" platform/standins/python platform/standins/python/Dockerfile
      have "$AIRFLOW_BASE" || build "$AIRFLOW_BASE" platform/standins/airflow \
        platform/standins/airflow/Dockerfile --build-arg "BASE_IMAGE=$PY_BASE"
      have "$PG_BASE" || build "$PG_BASE" platform/standins/postgres platform/standins/postgres/Dockerfile
      have "$REDIS_BASE" || build "$REDIS_BASE" platform/standins/redis platform/standins/redis/Dockerfile ;;
    *) echo "images: IMAGE_SOURCE must be auto, registry or debian" >&2; exit 2 ;;
  esac
}

have() { docker image inspect "$1" >/dev/null 2>&1; }

mkdir -p .state
choose_source
if [ "$what" = platform ] || [ "$what" = all ]; then
  build adpipe/airflow:dev platform/airflow platform/airflow/Dockerfile --build-arg "BASE_IMAGE=$AIRFLOW_BASE"
  build adpipe/postgres:dev platform/postgres platform/postgres/Dockerfile --build-arg "BASE_IMAGE=$PG_BASE"
  build adpipe/s3:dev platform/s3 platform/s3/Dockerfile --build-arg "BASE_IMAGE=$PY_BASE"
  build adpipe/ad-api:dev dags/api_load/scripts platform/ad-api/Dockerfile --build-arg "BASE_IMAGE=$PY_BASE"
  build adpipe/redis:dev platform/redis platform/redis/Dockerfile --build-arg "BASE_IMAGE=$REDIS_BASE"
fi
if [ "$what" = jobs ] || [ "$what" = all ]; then
  for job in extract_backup load archive; do
    tags=()  # :dev, and the git revision (a docker tag cannot hold the version's "+")
    [ "$revision" = unknown ] || tags+=(-t "adpipe/$job:$revision")
    build "adpipe/$job:dev" jobs jobs/Dockerfile --target "$job" --build-arg "BASE_IMAGE=$PY_BASE" \
      --build-arg "REVISION=$revision" --build-arg "VERSION=$version+$revision" ${tags[@]+"${tags[@]}"}
  done
fi

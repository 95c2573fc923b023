#!/usr/bin/env bash
# One-shot init of the stack's Airflow: write the simple auth manager's passwords file from
# AIRFLOW_USER / AIRFLOW_PASSWORD, make the OpenLineage file's folder, and migrate the
# metadata database.
set -euo pipefail
file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
mkdir -p "$(dirname "$file")"
python3 - "$file" <<'PY'
import json, os, sys
with open(sys.argv[1], "w") as out:
    json.dump({os.environ["AIRFLOW_USER"]: os.environ["AIRFLOW_PASSWORD"]}, out)
PY
chmod 600 "$file"
mkdir -p /opt/airflow/logs/openlineage
airflow db migrate

"""Exit 0 when an Airflow job of the given type (DagProcessorJob, TriggererJob) started
since this container did and is heartbeating: the compose healthcheck of the dag processor
and the triggerer. One query on the metadata database, a tenth of a second, where `airflow
jobs check` spends seconds of CPU; so the check can run every two seconds while the stack
starts, and the stack is healthy as soon as they are."""

import os
import sys

import psycopg2

HEARTBEAT_SECONDS = 30  # Airflow's own health threshold for both job types


def container_started() -> float:
    """Epoch seconds at which this container's first process started."""
    with open("/proc/stat") as stat:
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime"))
    with open("/proc/1/stat") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    dsn = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "", 1)
    with psycopg2.connect(dsn, connect_timeout=3) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM job WHERE job_type = %s AND state = 'running'"
            " AND start_date >= to_timestamp(%s) - interval '2 seconds'"
            " AND latest_heartbeat > now() - make_interval(secs => %s)",
            (sys.argv[1], container_started(), HEARTBEAT_SECONDS),
        )
        (alive,) = cur.fetchone()
    print(f"{sys.argv[1]}: {alive} running since this container started")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())

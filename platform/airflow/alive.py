"""The compose healthcheck of Airflow's long-running processes, cheap enough for `stack.sh` to
run every second while the stack starts (so it is healthy as soon as they are; Docker runs it
every 30 s), where `airflow jobs check` and `celery inspect ping` each spend seconds of CPU
importing Airflow.

    alive.py DagProcessorJob | TriggererJob   a job of that type started since this container
                                              did and is heartbeating (the metadata database)
    alive.py celery <worker-name>             the Celery worker <name>@<host> answers a ping
                                              through the broker
"""

import os
import socket
import sys

HEARTBEAT_SECONDS = 30  # Airflow's own health threshold for both job types


def container_started() -> float:
    """Epoch seconds at which this container's first process started."""
    with open("/proc/stat") as stat:
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime"))
    with open("/proc/1/stat") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def job_alive(job_type: str) -> bool:
    import psycopg2

    dsn = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "", 1)
    with psycopg2.connect(dsn, connect_timeout=3) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM job WHERE job_type = %s AND state = 'running'"
            " AND start_date >= to_timestamp(%s) - interval '2 seconds'"
            " AND latest_heartbeat > now() - make_interval(secs => %s)",
            (job_type, container_started(), HEARTBEAT_SECONDS),
        )
        (alive,) = cur.fetchone()
    return alive > 0


def worker_alive(name: str) -> bool:
    from celery import Celery

    app = Celery(broker=os.environ["AIRFLOW__CELERY__BROKER_URL"])
    return bool(app.control.ping([f"{name}@{socket.gethostname()}"], timeout=2))


def main() -> int:
    alive = worker_alive(sys.argv[2]) if sys.argv[1] == "celery" else job_alive(sys.argv[1])
    print(f"{' '.join(sys.argv[1:])}: {'alive' if alive else 'not alive'}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())

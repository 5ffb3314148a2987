"""`python worker.py [queue …]`: an RQ worker, with the scheduler on, working Postline's queues.

Queues are named from ``app.jobs.QUEUES`` (default: all of them, most urgent first — the worker always
drains ``high`` before it looks at ``default``), prefixed with ``RQ_QUEUE_PREFIX``.  Redis comes from
``REDIS_URL``, the database from ``DATABASE_URL``, exactly as for the web process.  ``--with-scheduler``
semantics are always on, so ``enqueue_in`` / ``enqueue_at`` and retries with intervals work.

Which worker class: ``POSTLINE_WORKER=simple|fork`` (or ``--simple`` / ``--fork``); default **simple**.

- ``simple`` (RQ's ``SimpleWorker``) runs each job in this process: ~226 jobs/s on a developer machine
  against ~54 for the forking worker, and — what matters more than the fork itself — the app, its
  database connection pool and its Redis pool live across jobs.  A forked work horse cannot safely reuse
  the parent's pooled connections, so every job would open a new database connection (a new backend
  process on PostgreSQL).  Our jobs are our own code, short, I/O-bound, idempotent and keyed by ids; job
  timeouts still apply (SIGALRM interrupts a job blocked in Python or a socket call).  What it gives up:
  a job that crashes the interpreter (segfault, ``os._exit``) or leaks memory takes the worker with it.
  The database row is the truth, so the sweepers re-enqueue that work, and the process manager restarts
  the worker.
- ``fork`` (RQ's ``Worker``) forks a work horse per job: every job starts from a clean copy of this
  process and a hung job is killed outright at its timeout.  Choose it for code you trust less (native
  extensions, third-party parsers) and accept the lower throughput.

Scale out by running more worker processes (on more hosts), not by threads.  How many per host: one per
core.  The email dispatcher already overlaps its I/O with its CPU work inside the process (a sender thread
talks SMTP while the next message is DKIM-signed; OpenSSL and sockets release the GIL), so its core stays
busy without a second process: on the 2-core benchmark box, 2 workers delivered 2,149 msg/s and 4 workers
2,012 msg/s, at more CPU per message (0.70 against 0.64 ms), see bench/README.md "Delivery".
"""
from __future__ import annotations

import argparse
import os
import sys

WORKER_CLASSES = ("simple", "fork")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from app.jobs import QUEUES

    parser = argparse.ArgumentParser(prog="worker.py", description="Postline RQ worker (with scheduler).")
    parser.add_argument("queues", nargs="*", metavar="queue",
                        help=f"queues to work, in priority order (default: {' '.join(QUEUES)})")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--simple", dest="worker_class", action="store_const", const="simple",
                      help="run jobs in this process (the default; see the module docstring)")
    kind.add_argument("--fork", dest="worker_class", action="store_const", const="fork",
                      help="fork a work horse per job")
    parser.add_argument("--burst", action="store_true", help="work until the queues are empty, then exit")
    parser.add_argument("--name", help="worker name (default: RQ's host.pid based name)")
    args = parser.parse_args(argv)

    args.worker_class = args.worker_class or os.environ.get("POSTLINE_WORKER", "simple").strip().lower()
    if args.worker_class not in WORKER_CLASSES:
        parser.error(f"POSTLINE_WORKER must be one of {', '.join(WORKER_CLASSES)}, not {args.worker_class!r}")
    unknown = [q for q in args.queues if q not in QUEUES]
    if unknown:
        parser.error(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    args.queues = list(dict.fromkeys(args.queues)) or list(QUEUES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    import redis as redis_lib
    from rq import SimpleWorker, Worker

    from app import create_app
    from app.jobs import queue_name, set_job_app

    app = create_app()
    set_job_app(app)  # one app per worker process, reused by every job (and inherited by forked horses)
    url = app.config.get("REDIS_URL")
    if not url:
        print("worker.py: REDIS_URL is not set (use `python -m app.launcher` for the embedded Redis)",
              file=sys.stderr)
        return 2
    with app.app_context():
        names = [queue_name(q) for q in args.queues]
    # Its own connection: RQ raises the socket timeout of the pool it is given to fit its blocking pops,
    # and the app's pool (used by jobs) keeps its short timeouts.
    connection = redis_lib.Redis.from_url(url)
    worker_cls = SimpleWorker if args.worker_class == "simple" else Worker
    worker = worker_cls(names, connection=connection, name=args.name)
    worker.work(with_scheduler=True, burst=args.burst, logging_level=app.config["LOG_LEVEL"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

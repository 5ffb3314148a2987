#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""Per-message cost of each step of delivery, measured alone in one process (wall and CPU µs/message).

    .venv/bin/python bench/delivery_parts.py

Steps, with the app's own code where it exists: build_message (app.delivery.mime), DkimSigner.sign (whole,
then sign_parts as the worker calls it, and the RSA private-key operation alone), one SMTP transaction into
smtp-sink over one reused connection as app.delivery.smtp drives it (PIPELINING, RFC 2920: MAIL+RCPT+DATA
in one write, then the body: 2 round trips) and the same exchange on a bare socket (what smtplib costs on
top), and a bookkeeping UPDATE of 200 rows on PostgreSQL three ways: SQLAlchemy executemany on psycopg2's
default mode (one round trip per row), ``executemany_mode='values_plus_batch'``, and one
``UPDATE … FROM (VALUES …)`` (what ``Deliverer._write`` now sends, through psycopg2's execute_values).
The CPU column is this process's CPU time, so it holds even on a busy machine; wall includes waiting for
the server (smtp-sink, PostgreSQL) on loopback.

    .venv/bin/python bench/delivery_parts.py --dispatch 4000 [--cprofile]

runs instead the whole dispatcher (``dispatch_email``, the RQ job's function) in this one process on N
accepted messages into smtp-sink, and prints its CPU per message (this process: every thread) next to the
CPU of its PostgreSQL backend.  ``--lanes N`` sets the sender threads (0: send inline), ``--phases`` adds
CPU per phase (worker and PostgreSQL; each timed call adds ~2–3 µs of timer overhead), ``--cprofile`` the top
functions (sending inline, so a thread's CPU is not charged to whatever released the GIL), ``--gc-freeze``
freezes the heap first.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

sys.path.insert(0, str(C.ROOT))


def timeit(fn, n: int) -> tuple[float, float]:
    fn()  # warm
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - w0) / n * 1e6, (time.process_time() - c0) / n * 1e6


def dispatch_inprocess(n: int, cprofile: bool) -> int:
    """The dispatcher alone, in-process: CPU µs per message of this process and of its PostgreSQL backends."""
    from delivery import item

    C.terminate_on_sigterm()
    run = C.Run("parts", C.ROOT / "bench" / "out" / time.strftime("parts-dispatch-%Y%m%d-%H%M%S"))
    try:
        sink = C.which("smtp-sink", "/usr/sbin/smtp-sink")
        port = C.free_port()
        user = ["-u", "postfix"] if os.geteuid() == 0 else []
        run.spawn("smtp-sink", [sink, *user, f"127.0.0.1:{port}", "1000"], env=dict(os.environ), stop_grace=3)
        C.wait_port(port)
        database_url = run.create_database()
        redis_db = run.claim_redis_db()
        env = run.app_env(database_url, redis_db, SMTP_RELAY_URL=f"smtp://127.0.0.1:{port}")
        org_id = run.migrate_and_create_account()["organization_id"]
        C.apply_env(env)
        from sqlalchemy import text

        from app import create_app
        from app.delivery.tasks import dispatch_email
        from app.extensions import db
        from app.messages.service import send_email_batch
        from app.tenancy import tenant_scope

        app = create_app()
        C.setup_sender_domain(app, org_id, "bench.example.com")
        with app.app_context():
            for start in range(0, n, 1000):
                with tenant_scope(org_id, "live"):
                    send_email_batch([item(i) for i in range(start, min(n, start + 1000))])
                    db.session.commit()
            pids = C.backend_pids(database_url)
            before = C.cpu_snapshot({})
            prof = None
            phases: dict[str, float] = {}
            if "--phases" in sys.argv:
                # CPU per phase (exclusive of nested phases is not attempted: read them as inclusive)
                import functools

                import app.delivery.mime as mime_mod
                import app.delivery.service as service_mod
                import app.delivery.smtp as smtp_mod
                import app.events.service as events_mod

                tick = os.sysconf("SC_CLK_TCK")

                def pg_cpu() -> float:  # the run's PostgreSQL backends, from /proc (a few syscalls)
                    total = 0.0
                    for pid in pids:
                        try:
                            rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                            total += (int(rest[11]) + int(rest[12])) / tick
                        except OSError:
                            pass
                    return total

                def timed(owner, name, label, pg=False):
                    fn = getattr(owner, name)

                    @functools.wraps(fn)
                    def wrapper(*a, **k):
                        c = time.process_time()
                        p = pg_cpu() if pg else 0.0
                        try:
                            return fn(*a, **k)
                        finally:
                            phases[label] = phases.get(label, 0.0) + time.process_time() - c
                            if pg:
                                phases[label + " [PostgreSQL]"] = (phases.get(label + " [PostgreSQL]", 0.0)
                                                                   + pg_cpu() - p)
                    setattr(owner, name, wrapper)
                timed(service_mod.Deliverer, "claim", "claim (UPDATE … RETURNING, loads, COMMIT)", pg=True)
                timed(service_mod.Deliverer, "_load", "  of which loads (recipients, files, domains)", pg=True)
                timed(service_mod.Deliverer, "send", "send (build, sign, SMTP, record)")
                timed(service_mod, "build_parts", "  build_parts")
                timed(mime_mod.DkimSigner, "sign_parts", "  sign_parts")
                timed(service_mod, "send_transaction", "  send_transaction")
                timed(service_mod.Deliverer, "_record", "  _record")
                timed(service_mod.Deliverer, "_send_live", "  _send_live (build, sign, submit)")
                timed(service_mod.Deliverer, "_signer", "    _signer")
                timed(service_mod.Deliverer, "_content", "    _content")
                timed(service_mod, "new_message_id_header", "    new_message_id_header")
                timed(service_mod._Lanes, "submit", "    _Lanes.submit (with the SMTP when inline)")
                timed(smtp_mod.Router, "route", "    Router.route")
                timed(service_mod.Deliverer, "write", "write (no COMMIT)")
                timed(service_mod.Deliverer, "_insert", "  attempts INSERT", pg=True)
                timed(service_mod.Deliverer, "_update", "  recipients + messages UPDATE", pg=True)
                timed(service_mod, "record_events", "  record_events (+ webhook fan-out)", pg=True)
                del smtp_mod, events_mod
            if "--gc-freeze" in sys.argv:
                import gc
                gc.collect()
                gc.freeze()
            if "--lanes" in sys.argv:
                from app.delivery import service
                service.SENDER_LANES = int(sys.argv[sys.argv.index("--lanes") + 1])
            if cprofile:
                import cProfile

                from app.delivery import service
                service.SENDER_LANES = 0  # send inline: a thread's CPU would be charged to GIL-releasing calls
                prof = cProfile.Profile(time.process_time)
                prof.enable()
            w0, c0 = time.perf_counter(), time.process_time()
            totals = dispatch_email()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if prof is not None:
                prof.disable()
            after = C.cpu_snapshot({})
            pg = sum(after["postgres_pids"].get(p, 0) - before["postgres_pids"].get(p, 0) for p in pids)
            left = db.session.execute(text("SELECT count(*) FROM messages WHERE status <> 'sent'")).scalar_one()
            db.session.remove()
        print()
        print(f"== dispatch_email in-process, {n} messages — load average {os.getloadavg()[0]:.1f}; {totals}; "
              f"{left} not sent")
        print(f"wall {wall * 1e6 / n:7.0f} µs/msg ({n / wall:.0f} msg/s, one process)")
        print(f"CPU  {cpu * 1e6 / n:7.0f} µs/msg this process (all threads); PostgreSQL backend "
              f"{pg * 1e6 / n:6.0f} µs/msg")
        for label, seconds in phases.items():
            print(f"  {label:60} {seconds * 1e6 / n:7.0f} µs/msg CPU")
        if prof is not None:
            import pstats
            out = run.workdir / "dispatch.pstats"
            prof.dump_stats(out)
            pstats.Stats(str(out)).sort_stats("tottime").print_stats(35)
            pstats.Stats(str(out)).sort_stats("cumulative").print_stats(45)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        run.close()


def main() -> int:
    if "--dispatch" in sys.argv:
        n = int(sys.argv[sys.argv.index("--dispatch") + 1])
        return dispatch_inprocess(n, "--cprofile" in sys.argv)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from app.delivery.mime import DkimSigner, build_message, new_message_id_header
    from app.delivery.smtp import ConnectionPool, Route, send_transaction
    from delivery import item

    C.terminate_on_sigterm()
    run = C.Run("parts", C.ROOT / "bench" / "out" / time.strftime("parts-%Y%m%d-%H%M%S"))
    rows = []
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        signer = DkimSigner("bench", "bench.example.com", pem)
        it = item(1)

        def build():
            return build_message(from_email="receipts@bench.example.com", from_name="Bench Receipts",
                                 to=[it["to"]], cc=[], reply_to=[], subject=it["subject"], html=it["html"],
                                 text=it["text"], headers={}, attachments=[],
                                 message_id_header=new_message_id_header("bench.example.com"))
        data = build()
        signed = signer.sign(data) + data
        rows.append(("build_message (app.delivery.mime)", *timeit(build, 2000)))
        rows.append(("DkimSigner.sign (whole, parsing the message first)", *timeit(lambda: signer.sign(data), 2000)))
        from app.delivery.mime import build_parts
        parts, body = build_parts(from_email="receipts@bench.example.com", from_name="Bench Receipts",
                                  to=[it["to"]], cc=[], reply_to=[], subject=it["subject"], html=it["html"],
                                  text=it["text"], headers={}, attachments=[],
                                  message_id_header=new_message_id_header("bench.example.com"))
        rows.append(("DkimSigner.sign_parts (what the worker runs)", *timeit(lambda: signer.sign_parts(parts, body),
                                                                            2000)))
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils
        digest = b"\x01" * 32
        rows.append(("  RSA-2048 private-key op alone (cryptography/OpenSSL)",
                     *timeit(lambda: signer.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())),
                             2000)))
        rows.append(("make_msgid (Message-ID header)", *timeit(lambda: new_message_id_header("bench.example.com"),
                                                               5000)))

        # --- SMTP ---------------------------------------------------------------------------------------
        sink = C.which("smtp-sink", "/usr/sbin/smtp-sink")
        port = C.free_port()
        user = ["-u", "postfix"] if os.geteuid() == 0 else []
        run.spawn("smtp-sink", [sink, *user, f"127.0.0.1:{port}", "1000"], env=dict(os.environ), stop_grace=3)
        C.wait_port(port)
        pool = ConnectionPool("bench.localhost", 30.0, None)
        route = Route([("127.0.0.1", "127.0.0.1", port)], relay=True)

        def smtp_tx():
            result = send_transaction(pool, route, "bounces+x@pl-bounces.bench.example.com",
                                      ["user1@example.org"], signed)
            assert result.outcomes["user1@example.org"].status == "accepted", result
        rows.append(("SMTP transaction, app.delivery.smtp, reused connection (2 round trips)", *timeit(smtp_tx, 3000)))
        pool.close()

        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    return line
        reply()
        sock.sendall(b"EHLO bench.localhost\r\n")
        reply()
        body = signed.replace(b"\r\n.", b"\r\n..") + b".\r\n"

        def pipelined():
            sock.sendall(b"MAIL FROM:<bounces+x@pl-bounces.bench.example.com>\r\nRCPT TO:<user1@example.org>\r\n"
                         b"DATA\r\n")
            for _ in range(3):
                reply()
            sock.sendall(body)
            assert reply()[:3] == b"250"
        rows.append(("SMTP transaction, bare socket, same 2 round trips (no smtplib)", *timeit(pipelined, 3000)))
        sock.close()

        # --- SQL ----------------------------------------------------------------------------------------
        import sqlalchemy as sa
        url = run.create_database().replace("postgresql://", "postgresql+psycopg2://")
        n_rows = 200
        for label, opts in (("UPDATE 200 rows by id, executemany (psycopg2 default mode)", {}),
                            ("UPDATE 200 rows, executemany_mode='values_plus_batch'",
                             {"executemany_mode": "values_plus_batch"})):
            engine = sa.create_engine(url, **opts)
            meta = sa.MetaData()
            t = sa.Table("t", meta, sa.Column("id", sa.String(32), primary_key=True), sa.Column("status", sa.String(20)),
                         sa.Column("n", sa.Integer), sa.Column("resp", sa.Text))
            meta.drop_all(engine)
            meta.create_all(engine)
            with engine.begin() as conn:
                conn.execute(t.insert(), [{"id": f"id{i}", "status": "sending", "n": 0, "resp": ""}
                                          for i in range(n_rows)])
            stmt = t.update().where(t.c.id == sa.bindparam("b_id")).values(
                status=sa.bindparam("b_status"), n=sa.bindparam("b_n"), resp=sa.bindparam("b_resp"))
            params = [{"b_id": f"id{i}", "b_status": "sent", "b_n": 1, "b_resp": "250 2.0.0 Ok: queued as X"}
                      for i in range(n_rows)]

            def upd():
                with engine.begin() as conn:
                    conn.execute(stmt, params)
            w, c = timeit(upd, 20)
            rows.append((label, w / n_rows, c / n_rows))
            if not opts:
                def values_update():
                    with engine.begin() as conn:
                        conn.exec_driver_sql(
                            "UPDATE t SET status = v.status, n = v.n, resp = v.resp FROM (VALUES "
                            + ",".join(["(%s,%s,%s,%s)"] * n_rows) + ") AS v(id, status, n, resp) WHERE t.id = v.id",
                            tuple(x for p in params for x in (p["b_id"], p["b_status"], p["b_n"], p["b_resp"])))
                w, c = timeit(values_update, 20)
                rows.append(("UPDATE 200 rows, one UPDATE … FROM (VALUES …) (as _write does)", w / n_rows, c / n_rows))
            engine.dispose()

        print()
        print(f"== delivery steps, per message — {C.machine()['nproc']} × {C.machine()['cpu']}, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'step':66} {'wall µs':>9} {'CPU µs':>9}")
        for label, w, c in rows:
            print(f"{label:66} {w:9.0f} {c:9.0f}")
        print(f"(signed sample message: {len(signed)} bytes)")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        run.close()


if __name__ == "__main__":
    sys.exit(main())

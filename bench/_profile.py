"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of a delivery worker by pipeline stage.

Each sample is put in the first stage whose frame appears on its stack (outermost first), then split by
whether its innermost Python frame was waiting in a driver/socket call.  ``python bench/_profile.py FILE``.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

# (stage, regex on a frame "function (path:line)"): checked in this order against the whole stack.
STAGES = [
    ("MIME build (build_message)", re.compile(r"^build_message \(.*delivery/mime\.py")),
    ("DKIM sign", re.compile(r"^DkimSigner\.sign \(.*delivery/mime\.py")),
    ("SMTP transaction (smtplib)", re.compile(r"^send_transaction \(.*delivery/smtp\.py")),
    ("SQL: claim_due (UPDATE … RETURNING + commit)", re.compile(r"^claim_due \(.*delivery/service\.py")),
    ("SQL: _write (attempts, recipients, messages, events) + commit", re.compile(
        r"^((Deliverer\.)?_write \(.*delivery/service\.py|(Session|scoped_session)\.commit \(.*sqlalchemy/orm/(session|scoping)\.py)")),
    ("Python bookkeeping (_record, aggregate)", re.compile(r"^Deliverer\._record \(.*delivery/service\.py")),
    ("SQL: load batch (messages, recipients, domains) + ORM", re.compile(r"^Deliverer\.deliver \(.*delivery/service\.py")),
    ("RQ: waiting for a job / job overhead", re.compile(r"^\w+\.(work|execute_job|perform_job|dequeue_job_and_maintain_ttl) \(.*rq/")),
]
WAIT_LEAF = re.compile(r"^(\w+\.)?(do_execute|do_executemany|do_execute_no_params|_execute_many|execute_values|"
                       r"readinto|recv|recv_into|sendall|send|_get_socks|readline|connect|getreply|"
                       r"read_response|_read_from_socket|can_read_destroy|poll|select|sleep|wait) ")
RSA_LINE = re.compile(r"self\.key\.sign\(")


ROOT = Path(__file__).resolve().parent.parent
IN_JOB = re.compile(r"^dispatch_email \(.*delivery/tasks\.py")


@lru_cache(maxsize=None)
def _source_line(frame: str) -> str:
    """The source text of an ``app/…`` frame (py-spy shortens paths relative to the working directory)."""
    m = re.search(r"\((.+):(\d+)\)$", frame)
    if not m:
        return ""
    path = Path(m.group(1))
    path = path if path.is_absolute() else ROOT / path
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return lines[int(m.group(2)) - 1]
    except (OSError, IndexError):
        return ""


def parse(path: str, main_only: bool = True) -> list[tuple[list[str], int]]:
    """Stacks of the worker's main thread (RQ's pub/sub listener thread is left out)."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            frames = [fr for fr in stack.split(";") if not fr.startswith(("process ", "thread "))]
            if main_only and frames and frames[0].startswith("Thread._bootstrap"):
                continue
            out.append((frames, int(count)))
    return out


def summarise(path: str) -> dict:
    samples = parse(path)
    main_total = sum(c for _, c in samples)
    samples = [(f, c) for f, c in samples if any(IN_JOB.search(fr) for fr in f)]
    total = sum(c for _, c in samples)
    stages: Counter = Counter()
    waiting: Counter = Counter()
    rsa = 0
    leaf_self: Counter = Counter()
    inclusive: Counter = Counter()
    for frames, count in samples:
        stage = "other"
        for name, rx in STAGES:
            if any(rx.search(fr) for fr in frames):
                stage = name
                break
        leaf = frames[-1]
        if stage == "DKIM sign" and RSA_LINE.search(_source_line(leaf)):
            rsa += count
        stages[stage] += count
        if WAIT_LEAF.search(leaf):
            waiting[stage] += count
        leaf_self[re.sub(r":\d+\)$", ")", leaf)] += count
        for fr in {re.sub(r":\d+\)$", ")", fr) for fr in frames}:
            inclusive[fr] += count
    return {"main_total": main_total, "total": total, "stages": stages, "waiting": waiting, "rsa": rsa,
            "self": leaf_self, "inclusive": inclusive}


def report(path: str, top: int = 15) -> str:
    s = summarise(path)
    total = s["total"] or 1
    lines = [f"py-spy, worker main thread: {s['main_total']} samples, {s['total']} inside dispatch_email "
             f"({100 * s['total'] / (s['main_total'] or 1):.0f} %); shares below are of the latter (wall clock)",
             "", f"{'stage':64} {'share':>7} {'waiting':>8}"]
    for name in [name for name, _ in STAGES] + ["other"]:
        if s["stages"][name]:
            lines.append(f"{name:64} {100 * s['stages'][name] / total:6.1f}% "
                         f"{100 * s['waiting'][name] / total:7.1f}%")
        if name == "DKIM sign" and s["rsa"]:
            lines.append(f"{'  of which the RSA private-key op (OpenSSL, key.sign)':64} {100 * s['rsa'] / total:6.1f}%")
    lines += ["", "(waiting: the innermost Python frame is a driver/socket call: DB, SMTP or Redis round trip)",
              "", f"top {top} functions by self time (innermost Python frame):"]
    for fr, n in s["self"].most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {_short(fr)}")
    lines += ["", f"top {top} functions by inclusive time (below dispatch_email):"]
    shown = 0
    for fr, n in s["inclusive"].most_common():
        if re.search(r"(worker\.py|rq/|<module>|runpy|jobs\.py|dispatch_email)", fr):
            continue
        lines.append(f"  {100 * n / total:5.1f}%  {_short(fr)}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines)


def top_functions(path: str, top: int = 25, under: str = r"full_dispatch_request") -> str:
    """Generic summary (any py-spy raw file): self and inclusive time of the functions below ``under``."""
    rx = re.compile(under)
    samples = [(f, c) for f, c in parse(path, main_only=False) if any(rx.search(fr) for fr in f)]
    total = sum(c for _, c in samples) or 1
    own: Counter = Counter()
    incl: Counter = Counter()
    for frames, count in samples:
        own[re.sub(r":\d+\)$", ")", frames[-1])] += count
        for fr in {re.sub(r":\d+\)$", ")", fr) for fr in frames}:
            incl[fr] += count
    lines = [f"py-spy: {total} samples below {under}", "", f"top {top} by self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {_short(fr)}" for fr, n in own.most_common(top)]
    lines += ["", f"top {top} by inclusive time (app code and SQLAlchemy/psycopg2/marshmallow/redis entry points):"]
    shown = 0
    for fr, n in incl.most_common():
        if not re.search(r"\((app/|.*(sqlalchemy/orm/session|psycopg2|marshmallow/schema|redis/client|"
                         r"email_validator|flask_smorest|webargs))", _short(fr)):
            continue
        lines.append(f"  {100 * n / total:5.1f}%  {_short(fr)}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines)


def _short(frame: str) -> str:
    return re.sub(r"\(/.*?(site-packages|lib/python3\.\d+|/work/main)/", "(", frame)


if __name__ == "__main__":
    print(report(sys.argv[1]))

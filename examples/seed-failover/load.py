#!/usr/bin/env python3
"""Load generator and request-log reader for the seed scenario (stdlib only).

    load.py run --connect 127.0.0.12:15001 --host httpbin.httpbin:8080 --out FILE
                [--workers 4] [--rate 200] [--duration 20] [--max-requests 4000]
        Keep-alive GETs from a few threads, as the app in cluster-2 would send them through its
        sidecar, at most --rate requests/s in all (0: as fast as they go), until the time or the
        request count is used up (SIGTERM ends it early, cleanly).
        Every request is one line in FILE: start time (Unix seconds), duration, status, answer.
        A request "fails" unless it gets 200 and the answer of an httpbin pod.

    load.py report --records FILE [--from T] [--to T]
        One line for the requests that started in [T, T'): `total=N failed=N cluster-1=N cluster-3=N
        first_cluster-1=T last_cluster-1=T ...` (times relative to --from).

    load.py timeline --records FILE --from T [--mark T:LABEL]...
        Requests per second by the cluster that answered, failures, and the marked events, as a
        person watching the traffic would see it.

    load.py failures --records FILE
        The failed requests, one per line (for the report at the end).
"""
import argparse
import http.client
import re
import signal
import sys
import threading
import time

POD = re.compile(r"^httpbin-(cluster-?\d+)-")


def cluster_of(answer):
    """'httpbin-cluster1-7d9c-a' -> 'cluster-1'; None for anything that is not a pod's answer."""
    m = POD.match(answer)
    if not m:
        return None
    name = m.group(1)
    return name if "-" in name else name.replace("cluster", "cluster-")


def run(args):
    host, port = args.connect.rsplit(":", 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    budget = [args.max_requests]
    out = open(args.out, "w", buffering=1)
    begin = time.monotonic()
    deadline = begin + args.duration
    interval = 1.0 / args.rate if args.rate > 0 else 0.0

    def take():
        """Claims the next request; paces the workers so that they send --rate requests/s together."""
        with lock:
            if budget[0] <= 0:
                return False
            due = begin + (args.max_requests - budget[0]) * interval
            budget[0] -= 1
        pause = due - time.monotonic()
        if pause > 0:
            stop.wait(pause)
        return not stop.is_set() and time.monotonic() < deadline

    def worker():
        conn = None
        while not stop.is_set() and time.monotonic() < deadline and take():
            t0 = time.time()
            m0 = time.monotonic()
            status, answer = 0, ""
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request("GET", "/", headers={"Host": args.host})
                resp = conn.getresponse()
                body = resp.read().decode("utf-8", "replace")
                status, answer = resp.status, body.strip().splitlines()[0] if body.strip() else ""
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                answer = f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                conn = None
            line = f"{t0:.6f} {time.monotonic() - m0:.6f} {status} {answer}\n"
            with lock:
                out.write(line)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()
    return 0


def records(path):
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 3)
            if len(parts) < 3:
                continue
            start, took, status = float(parts[0]), float(parts[1]), int(parts[2])
            answer = parts[3] if len(parts) > 3 else ""
            yield start, took, status, answer


def failed(status, answer):
    return status != 200 or cluster_of(answer) is None


def report(args):
    lo = args.since if args.since is not None else float("-inf")
    hi = args.to if args.to is not None else float("inf")
    base = args.since if args.since is not None else 0.0
    total = bad = 0
    per = {}
    first, last = {}, {}
    for start, _took, status, answer in records(args.records):
        if not lo <= start < hi:
            continue
        total += 1
        if failed(status, answer):
            bad += 1
            continue
        c = cluster_of(answer)
        per[c] = per.get(c, 0) + 1
        first.setdefault(c, start - base)
        last[c] = start - base
    fields = [f"total={total}", f"failed={bad}"]
    for c in ("cluster-1", "cluster-2", "cluster-3"):
        fields.append(f"{c}={per.get(c, 0)}")
    for c in sorted(first):
        fields.append(f"first_{c}={first[c]:.2f} last_{c}={last[c]:.2f}")
    print(" ".join(fields))
    return 0


def timeline(args):
    buckets = {}
    for start, _took, status, answer in records(args.records):
        b = int(start - args.since)
        row = buckets.setdefault(b, {"cluster-1": 0, "cluster-3": 0, "failed": 0})
        if failed(status, answer):
            row["failed"] += 1
        else:
            c = cluster_of(answer)
            row[c] = row.get(c, 0) + 1
    marks = []
    for m in args.mark:
        t, label = m.split(":", 1)
        marks.append((float(t) - args.since, label))
    print("second  cluster-1  cluster-3  failed")
    for b in sorted(buckets):
        row = buckets[b]
        events = ", ".join(f"<- {label} at {t:.1f} s" for t, label in marks if b <= t < b + 1)
        n = max(1, sum(row.values()))
        c1 = round(20 * row["cluster-1"] / n)
        c3 = round(20 * row["cluster-3"] / n)
        bar = "#" * c1 + "." * c3 + "!" * (1 if row["failed"] else 0)
        print(f"{b:>6}  {row['cluster-1']:>9}  {row['cluster-3']:>9}  {row['failed']:>6}  {bar:<20} {events}")
    print("(# cluster-1's share, . cluster-3's, ! some failed)")
    return 0


def failures(args):
    for start, took, status, answer in records(args.records):
        if failed(status, answer):
            print(f"{time.strftime('%H:%M:%S', time.localtime(start))}.{int(start % 1 * 1000):03d} "
                  f"after {took * 1000:.0f} ms: status {status} {answer}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--connect", required=True)
    r.add_argument("--host", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--workers", type=int, default=4)
    r.add_argument("--rate", type=float, default=200.0)
    r.add_argument("--duration", type=float, default=20.0)
    r.add_argument("--max-requests", type=int, default=4000)
    q = sub.add_parser("report")
    q.add_argument("--records", required=True)
    q.add_argument("--from", dest="since", type=float)
    q.add_argument("--to", type=float)
    t = sub.add_parser("timeline")
    t.add_argument("--records", required=True)
    t.add_argument("--from", dest="since", type=float, required=True)
    t.add_argument("--mark", action="append", default=[])
    f = sub.add_parser("failures")
    f.add_argument("--records", required=True)
    args = p.parse_args()
    return {"run": run, "report": report, "timeline": timeline, "failures": failures}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

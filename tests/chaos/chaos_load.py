#!/usr/bin/python3
"""Closed-loop HTTP/1.1 load for the chaos suite, and the reader of its records.

    chaos_load.py --port PORT --conns N --duration S --out FILE [--max-requests M] [--timeout 60]

N keep-alive connections to 127.0.0.1:PORT, each sending `GET /` back to back (the next request leaves
when the previous answer is read) until S seconds have passed or M requests were sent, whichever comes
first; requests in flight at the end are waited for (at most --timeout). Runs in a process of its own so
the driver's fault schedule and fault listeners do not compete with it for the GIL.

Every request is one line of FILE: `START DURATION STATUS LABEL`, START in CLOCK_MONOTONIC seconds
(the same clock as the driver's time.monotonic(), so faults and requests line up), STATUS the HTTP status
or 0 when no answer came, LABEL the X-Backend header of an answer or the kind of error
(refused, reset, eof, timeout, bad-response, ...). A request fails unless it gets a 2xx; there are no
client-side retries, and a request answered after 15 s is a success, not a failure.

Prints `go T` when the first requests leave and `done N` at the end (stdout), so the driver can time
its faults from the load's start.
"""
import argparse
import asyncio
import errno
import signal
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: app.chaos\r\nUser-Agent: sluice-chaos\r\n\r\n"
HEAD_LIMIT = 256 * 1024


class BadResponse(Exception):
    pass


async def read_body(reader, headers, status):
    """Reads the body; returns True when the connection must be closed afterwards."""
    if status in (204, 304) or 100 <= status < 200:
        return False
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return False
            await reader.readexactly(size + 2)
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
        return False
    await reader.read()  # delimited by the close
    return True


async def read_response(reader):
    """(status, X-Backend or "", must_close)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise BadResponse(lines[0][:80])
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        close = await read_body(reader, headers, status)
        if not 100 <= status < 200:
            close = close or "close" in headers.get("connection", "").lower() or parts[0] == "HTTP/1.0"
            return status, headers.get("x-backend", ""), close


def error_kind(exc):
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "eof"
    if isinstance(exc, (BadResponse, ValueError, asyncio.LimitOverrunError)):
        return "bad-response"
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return type(exc).__name__


class Load:
    def __init__(self, args):
        self.args = args
        self.records = []
        self.budget = args.max_requests
        self.stop = False

    def take(self, deadline):
        if self.stop or self.budget <= 0 or time.monotonic() >= deadline:
            return False
        self.budget -= 1
        return True

    async def connection(self, deadline):
        reader = writer = None
        while self.take(deadline):
            t0 = time.monotonic()
            status, label = 0, ""
            try:
                async with asyncio.timeout(self.args.timeout):
                    if writer is None:
                        reader, writer = await asyncio.open_connection(self.args.host, self.args.port,
                                                                       limit=HEAD_LIMIT)
                    writer.write(REQUEST)
                    status, label, close = await read_response(reader)
            except Exception as exc:  # every failure is data: record it and go on
                status, label, close = 0, error_kind(exc), True
            self.records.append((t0, time.monotonic() - t0, status, label or "-"))
            if close and writer is not None:
                writer.transport.abort()
                reader = writer = None
            if label == "refused":
                await asyncio.sleep(0.01)  # the proxy itself is not there: do not spin
        if writer is not None:
            writer.transport.abort()

    async def run(self):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.halt)
        loop.add_signal_handler(signal.SIGINT, self.halt)
        start = time.monotonic()
        deadline = start + self.args.duration
        print(f"go {start:.6f}", flush=True)
        await asyncio.gather(*(self.connection(deadline) for _ in range(self.args.conns)))

    def halt(self):
        self.stop = True

    def write(self, path):
        with open(path, "w") as f:
            for t0, dt, status, label in self.records:
                f.write(f"{t0:.6f} {dt:.6f} {status} {label}\n")


def read_records(path):
    """[(start, duration, status, label)] from a load file."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4:
                out.append((float(parts[0]), float(parts[1]), int(parts[2]), parts[3]))
    return out


def main():
    parser = argparse.ArgumentParser(description="closed-loop keep-alive GET load (chaos suite)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--duration", type=float, required=True, help="seconds of sending (at most 600)")
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not args.host.startswith("127."):
        parser.error("only loopback (127.0.0.0/8) may be contacted")
    args.duration = min(args.duration, 600.0)
    load = Load(args)
    try:
        asyncio.run(load.run())
    finally:
        load.write(args.out)
        print(f"done {len(load.records)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Round-trip latency between the scorer and a runner process over a Unix socket pair, the two
sides sleeping in the kernel (blocking reads) or polling (spinning): the floor of the scorer's
per-call overhead in triton_cumsum's protocol (docs/benchmarks/triton_cumsum.md).

    python benchmarks/triton_cumsum_latency.py [--trips 2000]

Prints a markdown table of microseconds per round trip.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

ECHO = """
import socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
spin = sys.argv[2] == "spin"
sock.setblocking(not spin)
while True:
    try:
        data = sock.recv(64)
    except BlockingIOError:
        continue
    if not data:
        break
    sock.sendall(data)
"""


def trips(spin: bool, count: int) -> list[float]:
    ours, theirs = socket.socketpair()
    child = subprocess.Popen([sys.executable, "-c", ECHO, str(theirs.fileno()), "spin" if spin else "block"],
                             pass_fds=(theirs.fileno(),))
    theirs.close()
    ours.setblocking(not spin)
    out = []
    try:
        for _ in range(count):
            t0 = time.monotonic_ns()
            ours.sendall(b"x")
            while True:
                try:
                    if ours.recv(64):
                        break
                except BlockingIOError:
                    continue
            out.append((time.monotonic_ns() - t0) / 1e3)
    finally:
        ours.close()
        child.wait(timeout=10)
    return out[count // 10:]  # the first tenth warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=2000)
    args = ap.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.trips} round trips each\n")
    print("| sides | median µs | p90 µs | p99 µs | max µs |\n|---|---|---|---|---|")
    for spin in (False, True):
        t = sorted(trips(spin, args.trips))
        q = lambda f: t[min(len(t) - 1, int(f * len(t)))]  # noqa: E731
        print(f"| {'polling' if spin else 'blocking'} | {statistics.median(t):.1f} | {q(0.9):.1f} | {q(0.99):.1f} | "
              f"{t[-1]:.1f} |")


if __name__ == "__main__":
    main()

"""Shared setup for the benchmarks: the same real processes the end-to-end tests use."""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from harness import (  # noqa: E402,F401
    MODE,
    PG_BIN,
    Cluster,
    Emulator,
    Sidecar,
    sidecar_key,
    sequin_sf_cli,
    create_emulator_credential,
    query_rows,
    query_value,
    wait_backfilled,
    wait_for,
    worker_pid,
)


def print_server(conn):
    """The header line every benchmark starts with: which PostgreSQL it measured."""
    print("server:", query_value(conn, "SELECT version()").split(" on ")[0])


def proc_status_kib(pid, key):
    """A /proc/<pid>/status field in KiB (VmHWM, RssAnon, ...), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values):
    return statistics.median(values) if values else float("nan")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start

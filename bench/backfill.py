"""Backfill benchmark: N Contacts from the emulator into Postgres, end to end, against
COPY of the same rows into the same table shape in the same run.

Prints rows/s, API calls used, the worker's peak memory and the ratio to COPY.

    .venv/bin/python bench/backfill.py [--rows N] [--rest] [--latency-ms MS] [--bulk-job-ms MS]
                                       [--sidecar]

--sidecar runs the sync with `sequin-sf` beside a Postgres that does not preload the
library (no worker), and adds the baseline that mode is measured against: `psql \\copy`
of the same rows over a TCP connection, as the sidecar's own connection is.

--latency-ms adds that much to every API call and --bulk-job-ms makes a Bulk job take
that long (real Salesforce: tens to hundreds of ms per call, seconds per job), so that
serial waits show in the figures."""

import argparse
import os
import subprocess
import threading
import time

from common import (
    print_server,
    Cluster,
    Emulator,
    PG_BIN,
    Sidecar,
    Timer,
    create_emulator_credential,
    proc_status_kib,
    query_rows,
    query_value,
    sidecar_key,
    wait_backfilled,
    worker_pid,
)


def sample_memory(conn_factory, stop, peak, sidecar=None):
    """Peak memory of the process running the sync: the worker, or the sidecar."""
    conn = conn_factory()
    while not stop.is_set():
        pid = sidecar.proc.pid if sidecar else worker_pid(conn)
        if pid:
            anon = proc_status_kib(pid, "RssAnon") or 0
            hwm = proc_status_kib(pid, "VmHWM") or 0
            peak["anon"] = max(peak.get("anon", 0), anon)
            peak["hwm"] = max(peak.get("hwm", 0), hwm)
        time.sleep(0.1)
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rest", action="store_true",
                    help="force REST pages of 2000 (no Bulk 2.0 job) to compare the two paths")
    ap.add_argument("--latency-ms", type=int, default=0, help="added to every API call")
    ap.add_argument("--bulk-job-ms", type=int, default=0, help="how long a Bulk job runs")
    ap.add_argument("--max-concurrent", type=int, default=2,
                    help="the sync's max_concurrent_requests (default 2, as create_sync's; 2 or more: the next page is"
                         " fetched while one is applied)")
    ap.add_argument("--sidecar", action="store_true",
                    help="run the sync with sequin-sf beside a Postgres without the worker")
    args = ap.parse_args()

    with Timer() as gen:
        emu = Emulator("--seed", "1", "--generate", f"Contact={args.rows}",
                       "--latency-ms", str(args.latency_ms), "--bulk-job-ms", str(args.bulk_job_ms))
    cluster = Cluster(settings={"shared_preload_libraries": "''"} if args.sidecar else None)
    sidecar = None
    try:
        conn = cluster.connect()
        print_server(conn)
        conn.execute("CREATE EXTENSION sequin_sf")
        create_emulator_credential(conn, emu)
        emu.control("POST", "stats/reset")
        if args.sidecar:
            sidecar = Sidecar(cluster.dsn(), sidecar_key(cluster))

        stop, peak = threading.Event(), {}
        sampler = threading.Thread(target=sample_memory,
                                   args=(cluster.connect, stop, peak, sidecar))
        sampler.start()
        with Timer() as backfill:
            conn.execute(
                "SELECT sequin_sf.create_sync('bench', credential => 'emu',"
                " collections => ARRAY['Contact'], rate_limit_requests => 100000,"
                " bulk_threshold => %s, max_concurrent_requests => %s)",
                # --rest: a threshold above any count keeps the backfill on REST pages
                (2**63 - 1 if args.rest else 50_000, args.max_concurrent),
            )
            wait_backfilled(conn, "bench", timeout=3600)
        stop.set()
        sampler.join()

        stats = emu.stats()
        rows = query_value(conn, "SELECT count(*) FROM salesforce.contact")
        assert rows == args.rows, f"backfilled {rows} rows, expected {args.rows}"

        # Baseline: COPY of exactly these rows into a table of the same shape and indexes.
        cols = [r[0] for r in query_rows(conn,
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " 'salesforce' AND table_name = 'contact' AND column_name <> '_row_id'"
                " ORDER BY ordinal_position")]
        col_list = ", ".join(f'"{c}"' for c in cols)
        path = f"{cluster.datadir}/contacts.copy"
        conn.execute(f"COPY salesforce.contact ({col_list}) TO '{path}'")
        conn.execute("CREATE TABLE public.copy_baseline"
                     " (LIKE salesforce.contact INCLUDING DEFAULTS INCLUDING INDEXES"
                     " INCLUDING IDENTITY)")
        with Timer() as copy:
            conn.execute(f"COPY public.copy_baseline ({col_list}) FROM '{path}'")

        backfill_rate = rows / backfill.seconds
        copy_rate = rows / copy.seconds
        if args.sidecar:
            # the same rows through psql's \copy over TCP, into a fresh table alike
            conn.execute("CREATE TABLE public.client_copy_baseline"
                         " (LIKE salesforce.contact INCLUDING DEFAULTS INCLUDING INDEXES"
                         " INCLUDING IDENTITY)")
            with Timer() as client_copy:
                subprocess.run(
                    [os.path.join(PG_BIN, "psql"), cluster.dsn(), "-q", "-v", "ON_ERROR_STOP=1",
                     "-c", f"\\copy public.client_copy_baseline ({col_list}) FROM '{path}'"],
                    check=True)
            client_copy_rate = rows / client_copy.seconds
        endpoints = {k: v for k, v in stats.get("endpoints", {}).items() if v}
        print(f"emulator start+generation: {gen.seconds:.1f} s for {args.rows} Contacts")
        print(f"backfill: {rows} rows in {backfill.seconds:.1f} s = {backfill_rate:,.0f} rows/s")
        print(f"COPY baseline: {rows} rows in {copy.seconds:.1f} s = {copy_rate:,.0f} rows/s")
        if args.sidecar:
            print(f"psql \\copy over TCP baseline: {rows} rows in {client_copy.seconds:.1f} s"
                  f" = {client_copy_rate:,.0f} rows/s")
            print(f"ratio sidecar backfill/psql \\copy: {backfill_rate / client_copy_rate:.1%}"
                  "  (target >= 70%)")
            print(f"ratio sidecar backfill/server-side COPY: {backfill_rate / copy_rate:.1%}")
        else:
            target = "50%" if args.rest else "80%"
            print(f"ratio backfill/COPY: {backfill_rate / copy_rate:.1%}  (target >= {target})")
        print(f"API calls: {stats['api_requests_total']}  by endpoint: {endpoints}")
        who = "sidecar" if args.sidecar else "worker"
        print(f"{who} peak RssAnon: {peak.get('anon', 0) / 1024:.1f} MiB (target < 64 MiB),"
              f" VmHWM (incl. shared buffers touched): {peak.get('hwm', 0) / 1024:.1f} MiB")
        print("collections:", query_rows(conn, "SELECT collection, state, rows_done,"
              " rows_total FROM sequin_sf.sync_status"))
        log = sidecar.output() if sidecar else cluster.log()
        for line in log.splitlines():
            if "page of" in line:
                print("  " + line.split("LOG:", 1)[-1].strip())
    finally:
        if sidecar:
            sidecar.stop()
        cluster.destroy()
        emu.stop()


if __name__ == "__main__":
    main()

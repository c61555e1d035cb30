"""Backfill benchmark: N Contacts from the emulator into Postgres, end to end, against
COPY of the same rows into the same table shape in the same run.

Prints rows/s, API calls used, the worker's peak memory and the ratio to COPY.

    .venv/bin/python bench/backfill.py [--rows N] [--rest] [--latency-ms MS] [--bulk-job-ms MS]

--latency-ms adds that much to every API call and --bulk-job-ms makes a Bulk job take
that long (real Salesforce: tens to hundreds of ms per call, seconds per job), so that
serial waits show in the figures."""

import argparse
import threading
import time

from common import (
    print_server,
    Cluster,
    Emulator,
    Timer,
    create_emulator_credential,
    proc_status_kib,
    query_rows,
    query_value,
    wait_backfilled,
    worker_pid,
)


def sample_memory(conn_factory, stop, peak):
    conn = conn_factory()
    while not stop.is_set():
        pid = worker_pid(conn)
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
    args = ap.parse_args()

    with Timer() as gen:
        emu = Emulator("--seed", "1", "--generate", f"Contact={args.rows}",
                       "--latency-ms", str(args.latency_ms), "--bulk-job-ms", str(args.bulk_job_ms))
    cluster = Cluster()
    try:
        conn = cluster.connect()
        print_server(conn)
        conn.execute("CREATE EXTENSION sequin_sf")
        create_emulator_credential(conn, emu)
        emu.control("POST", "stats/reset")

        stop, peak = threading.Event(), {}
        sampler = threading.Thread(target=sample_memory, args=(cluster.connect, stop, peak))
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
        endpoints = {k: v for k, v in stats.get("endpoints", {}).items() if v}
        print(f"emulator start+generation: {gen.seconds:.1f} s for {args.rows} Contacts")
        print(f"backfill: {rows} rows in {backfill.seconds:.1f} s = {backfill_rate:,.0f} rows/s")
        print(f"COPY baseline: {rows} rows in {copy.seconds:.1f} s = {copy_rate:,.0f} rows/s")
        target = "50%" if args.rest else "80%"
        print(f"ratio backfill/COPY: {backfill_rate / copy_rate:.1%}  (target >= {target})")
        print(f"API calls: {stats['api_requests_total']}  by endpoint: {endpoints}")
        print(f"worker peak RssAnon: {peak.get('anon', 0) / 1024:.1f} MiB (target < 64 MiB),"
              f" VmHWM (incl. shared buffers touched): {peak.get('hwm', 0) / 1024:.1f} MiB")
        print("collections:", query_rows(conn, "SELECT collection, state, rows_done,"
              " rows_total FROM sequin_sf.sync_status"))
        for line in cluster.log().splitlines():
            if "page of" in line:
                print("  " + line.split("LOG:", 1)[-1].strip())
    finally:
        cluster.destroy()
        emu.stop()


if __name__ == "__main__":
    main()

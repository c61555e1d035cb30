"""Write-back benchmark, against the emulator with no added latency.

1. API calls per 10,000 changed rows across 5 collections (2,000 UPDATEd rows each):
   the sync is paused while the rows change, then resumed; the writer's calls are
   counted from the write log (each call claims its entries in one transaction, so
   distinct claim times = calls) and cross-checked with the emulator's request counts.
   Target: 10 or fewer (an unbatched writer needs 10,000).
2. Write-back latency with batching off (max_batch_wait 0): single-row UPDATEs committed
   one at a time; latency = settled_at - inserted_at of the log entry (both taken by the
   server), i.e. commit to `succeeded`. Target: median under 1 s.

    .venv/bin/python bench/write_back.py [--rows-per-object 2000] [--latency-samples 40]
"""

import argparse
import time

from common import (
    print_server,
    Cluster,
    Emulator,
    create_emulator_credential,
    median,
    percentile,
    query_rows,
    query_value,
    wait_backfilled,
)

# object -> (table, a writable text column)
COLLECTIONS = {
    "Account": ("account", "description"),
    "Contact": ("contact", "title"),
    "Lead": ("lead", "title"),
    "Opportunity": ("opportunity", "description"),
    "Case": ("case", "subject"),
}
SYNC = "wb"


def await_all(conn, timeout="600 seconds"):
    return query_rows(conn, "SELECT * FROM sequin_sf.await_writes(%s::interval)", (timeout,))[0]


def calls_per_10k(conn, emu, rows_per_object):
    before_log = query_value(conn, "SELECT coalesce(max(id), 0) FROM salesforce._sync_write_log")
    conn.execute("SELECT sequin_sf.pause_sync(%s)", (SYNC,))
    time.sleep(1)  # let a loop iteration in progress finish
    with conn.transaction():
        for obj, (table, column) in COLLECTIONS.items():
            conn.execute(
                f"UPDATE salesforce.{table} SET {column} = coalesce({column}, '') || ' (bench)'"
                f" WHERE _row_id IN (SELECT _row_id FROM salesforce.{table}"
                f" WHERE id IS NOT NULL ORDER BY _row_id LIMIT {rows_per_object})"
            )
    # entries of large statements and transactions wait in batches until the worker runs
    changed = query_value(
        conn,
        "SELECT (SELECT count(*) FROM salesforce._sync_write_log WHERE id > %s)"
        "     + (SELECT coalesce(sum(cardinality(ids)), 0) FROM salesforce._sync_write_batch)",
        (before_log,),
    )
    stats0 = emu.stats()
    started = time.perf_counter()
    conn.execute("SELECT sequin_sf.resume_sync(%s)", (SYNC,))
    ok, bad, open_ = await_all(conn)
    elapsed = time.perf_counter() - started
    stats1 = emu.stats()
    states = dict(query_rows(
        conn,
        "SELECT state, count(*) FROM salesforce._sync_write_log WHERE id > %s GROUP BY 1",
        (before_log,),
    ))
    write_calls = query_value(
        conn,
        "SELECT count(DISTINCT claimed_at) FROM salesforce._sync_write_log WHERE id > %s",
        (before_log,),
    )
    attempts = query_value(
        conn, "SELECT max(attempts) FROM salesforce._sync_write_log WHERE id > %s", (before_log,)
    )
    ep0, ep1 = stats0["endpoints"], stats1["endpoints"]
    delta = {k: ep1[k] - ep0[k] for k in ("composite", "collections", "sobject_update")}
    total = stats1["api_requests_total"] - stats0["api_requests_total"]
    print(f"  changed rows: {changed} across {len(COLLECTIONS)} collections; states: {states}")
    print(f"  writer API calls: {write_calls}  (target <= 10; max attempts per entry {attempts})"
          f"  -> {write_calls * 10000 / max(changed, 1):.1f} calls per 10,000 rows")
    print(f"  emulator during the drain (includes polling): total requests {total},"
          f" /composite {delta['composite']}, /composite/sobjects {delta['collections']},"
          f" single-record PATCH {delta['sobject_update']}")
    print(f"  drain time: {elapsed:.2f} s ({changed / elapsed:.0f} rows/s)")


def latency(conn, samples):
    conn.execute("SELECT sequin_sf.alter_write_settings(%s, max_batch_wait => '0 s')", (SYNC,))
    ids = [r[0] for r in query_rows(
        conn, "SELECT id FROM salesforce.contact WHERE id IS NOT NULL ORDER BY id LIMIT %s",
        (samples,))]
    before_log = query_value(conn, "SELECT coalesce(max(id), 0) FROM salesforce._sync_write_log")
    for i, rid in enumerate(ids):
        conn.execute("UPDATE salesforce.contact SET title = %s WHERE id = %s", (f"lat {i}", rid))
        # one at a time: wait for this write to settle before the next
        await_all(conn, "60 seconds")
    lat = [r[0] for r in query_rows(
        conn,
        "SELECT extract(epoch FROM settled_at - inserted_at)::float8"
        " FROM salesforce._sync_write_log WHERE id > %s AND state = 'succeeded'",
        (before_log,),
    )]
    print(f"  {len(lat)} single-row updates, batching off: median {median(lat) * 1000:.0f} ms,"
          f" p90 {percentile(lat, 90) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
          "  (target: median < 1000 ms)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows-per-object", type=int, default=2000)
    ap.add_argument("--latency-samples", type=int, default=40)
    args = ap.parse_args()

    n = args.rows_per_object
    emu = Emulator("--seed", "9", "--generate", ",".join(f"{o}={n}" for o in COLLECTIONS))
    cluster = Cluster()
    try:
        conn = cluster.connect()
        print_server(conn)
        conn.execute("CREATE EXTENSION sequin_sf")
        create_emulator_credential(conn, emu)
        conn.execute(
            "SELECT sequin_sf.create_sync(%s, credential => 'emu', collections => %s,"
            " rate_limit_requests => 100000)",
            (SYNC, list(COLLECTIONS)),
        )
        wait_backfilled(conn, SYNC, timeout=600)
        print(f"write-back: API calls per {n * len(COLLECTIONS)} changed rows")
        calls_per_10k(conn, emu, n)
        print("write-back latency (commit -> succeeded)")
        latency(conn, args.latency_samples)
    finally:
        cluster.destroy()
        emu.stop()


if __name__ == "__main__":
    main()

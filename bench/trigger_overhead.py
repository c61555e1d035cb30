"""Trigger overhead of write capture: INSERT and UPDATE rows/s on a table with the
capture triggers against the same table without them, measured in the same run.

Both tables have the shape of a synced Contact table (`_row_id` identity key, nullable
unique `id`, `_write_state`, a dozen typical columns). The captured one gets the same
triggers a sync installs (sequin_sf._install_write_triggers), so each change also lands
in `_sync_write_log` (a transaction's entries beyond its first 100, and a statement of more
than 100 rows: in `_sync_write_batch`, which the worker unpacks into the log; there is no
worker here). Runs alternate between the two
tables chunk by chunk.

A last line measures the write-log append alone (the log rows a bulk INSERT adds, written
directly) against the bulk INSERT itself: what a capture that logs one row per change
could reach at best, and why large statements are logged in batches.

    .venv/bin/python bench/trigger_overhead.py [--rows N] [--repeat R] [--plain]

--plain measures the PL/pgSQL capture instead (sql/plain/library.sql): a Postgres that
loads no library of ours, with the objects `sequin-sf install` creates.

    BENCH_DSN=... to use an existing database that has the extension (else a throwaway
    cluster is started).
"""

import argparse
import os

import threading

from common import Cluster, Timer, print_server, proc_status_kib, sequin_sf_cli

COLUMNS = """
    _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text UNIQUE,
    _write_state text,
    first_name text, last_name text, title text, email text, phone text,
    lead_source text, department text, description text, mailing_city text,
    birthdate date, amount numeric, do_not_call boolean,
    system_modstamp timestamptz, created_date timestamptz
"""

INSERT = """
INSERT INTO {t} (id, first_name, last_name, title, email, phone, lead_source, department,
                 description, mailing_city, birthdate, amount, do_not_call)
SELECT NULL, 'First' || g, 'Last' || g, 'Title ' || (g %% 17), 'user' || g || '@example.com',
       '+1 555 ' || g, 'Web', 'Dept ' || (g %% 7), repeat('x', 40), 'City ' || (g %% 50),
       date '1980-01-01' + (g %% 9000), g * 1.5, g %% 2 = 0
  FROM generate_series(%s::int, %s::int) g
"""

UPDATE = "UPDATE {t} SET title = title || '!', amount = amount + 1 WHERE _row_id BETWEEN %s AND %s"

# What capture appends for each inserted row, written straight into the log: the cost no
# capture design that logs one row per change can go below.
LOG_APPEND = """
INSERT INTO bench_w._sync_write_log (table_name, object_name, row_id, action)
SELECT 'captured', 'Contact', g, 'insert' FROM generate_series(%s::int, %s::int) g
"""

NONCREATE = '{"id": "the Salesforce Id is assigned by Salesforce", "system_modstamp": "system field", "created_date": "system field"}'


def setup(conn):
    conn.execute("DROP TABLE IF EXISTS bench_w.plain, bench_w.captured")
    conn.execute("DROP SCHEMA IF EXISTS bench_w CASCADE")
    conn.execute("CREATE SCHEMA bench_w")
    for t in ("plain", "captured"):
        conn.execute(f"CREATE TABLE bench_w.{t} ({COLUMNS})")
    conn.execute(
        "SELECT sequin_sf._install_write_triggers('bench_w.captured'::regclass, 'Contact',"
        " %s::jsonb, %s::jsonb, '{\"lead_source\": [\"Web\", \"Phone\"]}'::jsonb)",
        (NONCREATE, NONCREATE),
    )


def truncate(conn):
    # TRUNCATE of a captured table is refused unless the worker-applied flag is set.
    with conn.transaction():
        conn.execute("SELECT set_config('sequin_sf.applying', 'on', true)")
        conn.execute("TRUNCATE bench_w.plain, bench_w.captured, bench_w._sync_write_log,"
                     " bench_w._sync_write_batch")


def run_statements(conn, sql, lo, hi, per_statement, per_transaction):
    """Seconds to change rows lo..hi (1-based, inclusive) `per_statement` rows at a time,
    committing every `per_transaction` rows."""
    with Timer() as t:
        done = lo - 1
        while done < hi:
            with conn.transaction():
                block_end = min(done + per_transaction, hi)
                while done < block_end:
                    top = min(done + per_statement, block_end)
                    conn.execute(sql, (done + 1, top))
                    done = top
    return t.seconds


def measure(conn, rows, repeat, per_statement, per_transaction, chunks=10):
    """Rows/s per (operation, table). The two tables take turns chunk by chunk, so load
    from other processes on the machine hits both alike."""
    seconds = {(op, t): 0.0 for op in ("insert", "update") for t in ("plain", "captured")}
    size = max(rows // chunks, 1)
    for r in range(repeat):
        truncate(conn)
        for t in ("plain", "captured"):
            conn.execute(f"VACUUM ANALYZE bench_w.{t}")
            conn.execute(f"ALTER TABLE bench_w.{t} ALTER COLUMN _row_id RESTART WITH 1")
        for op, template in (("insert", INSERT), ("update", UPDATE)):
            for c in range(chunks):
                lo, hi = c * size + 1, (c + 1) * size
                order = ("plain", "captured") if (c + r) % 2 == 0 else ("captured", "plain")
                for t in order:
                    seconds[(op, t)] += run_statements(
                        conn, template.format(t=f"bench_w.{t}"), lo, hi, per_statement,
                        per_transaction)
    return {k: size * chunks * repeat / v for k, v in seconds.items()}


def log_append_floor(conn, rows, repeat, per_statement=500, chunks=10):
    """Rows/s of a bulk INSERT into the plain table and of appending as many log rows
    directly, alternating chunk by chunk like measure()."""
    seconds = {"plain": 0.0, "log": 0.0}
    size = max(rows // chunks, 1)
    for r in range(repeat):
        truncate(conn)
        conn.execute("ALTER TABLE bench_w.plain ALTER COLUMN _row_id RESTART WITH 1")
        for c in range(chunks):
            lo, hi = c * size + 1, (c + 1) * size
            order = ("plain", "log") if (c + r) % 2 == 0 else ("log", "plain")
            for what in order:
                sql = INSERT.format(t="bench_w.plain") if what == "plain" else LOG_APPEND
                seconds[what] += run_statements(conn, sql, lo, hi, per_statement, 5000)
    return {k: size * chunks * repeat / v for k, v in seconds.items()}


WIDE = """
    _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text UNIQUE,
    _write_state text, title text, description text
"""


def toast_update(conn, rows):
    """One UPDATE of `rows` rows whose 10 kB description is stored out of line (TOAST,
    uncompressed), changing only their title, on a table without capture and on one with
    it: seconds, and the backend's peak private memory (RssAnon, sampled every 20 ms).
    Capture keeps each row before with its description fetched, so memory that grew
    with the rows would show here."""
    out = {}
    for t in ("wide_plain", "wide_captured"):
        conn.execute(f"CREATE TABLE bench_w.{t} ({WIDE})")
        conn.execute(f"ALTER TABLE bench_w.{t} ALTER COLUMN description SET STORAGE EXTERNAL")
    conn.execute(
        "SELECT sequin_sf._install_write_triggers('bench_w.wide_captured'::regclass, 'Contact',"
        " '{\"id\": \"assigned by Salesforce\"}', '{\"id\": \"assigned by Salesforce\"}', '{}')")
    for t in ("wide_plain", "wide_captured"):
        with conn.transaction():
            conn.execute("SELECT set_config('sequin_sf.applying', 'on', true)")
            conn.execute(
                f"INSERT INTO bench_w.{t} (title, description)"
                " SELECT 'T' || g, repeat(md5(g::text), 320) FROM generate_series(1, %s) g",
                (rows,))
        conn.execute(f"VACUUM ANALYZE bench_w.{t}")
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    for t in ("wide_plain", "wide_captured"):
        stop, peak = threading.Event(), [proc_status_kib(pid, "RssAnon") or 0]

        def sample():
            while not stop.wait(0.02):
                peak[0] = max(peak[0], proc_status_kib(pid, "RssAnon") or 0)

        before = peak[0]
        sampler = threading.Thread(target=sample)
        sampler.start()
        with Timer() as timer:
            conn.execute(f"UPDATE bench_w.{t} SET title = title || '!'")
        stop.set()
        sampler.join()
        out[t] = (timer.seconds, before, peak[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--plain", action="store_true",
                    help="the PL/pgSQL capture sequin-sf installs, on a Postgres without our library")
    ap.add_argument("--toast-rows", type=int, default=100_000,
                    help="rows of the one UPDATE of out-of-line 10 kB values (0: skip it)")
    args = ap.parse_args()

    cluster = None
    dsn = os.environ.get("BENCH_DSN")
    if dsn is None:
        cluster = Cluster(settings={"shared_preload_libraries": "''"} if args.plain else None)
        dsn = cluster.dsn()
    import psycopg

    if args.plain:
        done = sequin_sf_cli("install", "--database-url", dsn)
        assert done.returncode == 0, done.stderr

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            have = conn.execute(
                "SELECT to_regproc('sequin_sf._install_write_triggers') IS NOT NULL").fetchone()[0]
            if not have:
                conn.execute("CREATE EXTENSION sequin_sf")
            setup(conn)
            print_server(conn)
            print(f"trigger overhead of the {'PL/pgSQL' if args.plain else 'C'} capture:"
                  f" up to {args.rows} rows per run, {args.repeat} runs, tables alternating in chunks")
            # Each run changes `rows` rows in 10 chunks: a chunk of the transaction mode is
            # one whole 5,000-statement transaction, so that mode changes 50,000 rows a run.
            modes = (
                # what an application does: one row per statement, each committed
                (1, 1, max(args.rows // 2, 500), "1 row/stmt, autocommit", 85),
                (1, 5000, 10 * 5000, "1 row/stmt, 5000/txn", 85),
                (500, 5000, args.rows, "500 rows/stmt", 60),
            )
            if args.plain:
                # the target for a capture without our library: 70% for one row
                modes = tuple((s, t, r, label, 70 if s == 1 else target)
                              for s, t, r, label, target in modes)
            for per_statement, per_txn, rows, label, target in modes:
                m = measure(conn, rows, args.repeat, per_statement, per_txn)
                for op in ("insert", "update"):
                    plain, captured = m[(op, "plain")], m[(op, "captured")]
                    print(f"  {op.upper():6} {label:24} without trigger {plain:10.0f} rows/s"
                          f"  with capture {captured:10.0f} rows/s  ratio {captured / plain:6.1%}"
                          f"  (target >= {target}%)")
            batched = conn.execute(
                "SELECT coalesce(sum(cardinality(ids)), 0) FROM bench_w._sync_write_batch"
            ).fetchone()[0]
            print(f"  (the last capture run left {batched} entries in bench_w._sync_write_batch)")
            floor = log_append_floor(conn, args.rows, args.repeat)
            best = 1 / (1 + floor["plain"] / floor["log"])
            print(f"  write-log append alone, 500 rows/stmt: {floor['log']:.0f} log rows/s against"
                  f" {floor['plain']:.0f} table rows/s: a capture costing only its log append"
                  f" would give INSERT ~{best:.0%} (the ceiling of one log row per change)")
            if args.toast_rows:
                wide = toast_update(conn, args.toast_rows)
                for t, label in (("wide_plain", "without trigger"), ("wide_captured", "with capture")):
                    seconds, before, peak = wide[t]
                    print(f"  UPDATE of {args.toast_rows} rows with 10 kB out-of-line text, {label}:"
                          f" {seconds:.1f} s, backend RssAnon {before / 1024:.1f} MiB before,"
                          f" peak {peak / 1024:.1f} MiB")
            conn.execute("DROP SCHEMA bench_w CASCADE")
    finally:
        if cluster:
            cluster.destroy()


if __name__ == "__main__":
    main()

"""Write-back under concurrent load: several application connections insert, update and
delete rows of a synced table while the background worker drains the write log. Every
change must reach Salesforce with its fields, whatever moment of the writer's round it
was committed in (reading the queue, sending, settling).

Nothing here is timed: the load is ordinary autocommit statements, and the assertions
are on the final state of the log, the table and the emulator."""

import random
import threading

import psycopg
import pytest

from harness import query_rows, query_value, sf_records, synced_org, wait_for

SYNC = "conc"
CONNECTIONS = 4
INSERTS_PER_CONNECTION = 250


@pytest.fixture(scope="module")
def env():
    with synced_org(("--seed", "5", "--generate", "Account=5,Contact=10"), SYNC,
                    ["Contact"]) as org:
        yield org


def application_load(cluster, tag, worker_no, errors):
    """One application connection: inserts rows one statement at a time and, between
    them, updates and deletes rows it inserted earlier (with or without an Id yet), now
    and then all of them in one statement."""
    rnd = random.Random(f"{tag}-{worker_no}")
    mine = []
    try:
        with cluster.connect() as conn:
            for i in range(INSERTS_PER_CONNECTION):
                name = f"{tag}-{worker_no}-{i}"
                row_id = query_value(
                    conn,
                    "INSERT INTO salesforce.contact (last_name, first_name, title, email)"
                    " VALUES (%s, 'F', 'v0', %s) RETURNING _row_id",
                    (name, f"{name.lower()}@example.com"),
                )
                mine.append(row_id)
                if i % 3 == 2:
                    conn.execute(
                        "UPDATE salesforce.contact SET title = %s WHERE _row_id = %s",
                        (f"v{i}", rnd.choice(mine)),
                    )
                if i % 7 == 6:
                    victim = mine.pop(rnd.randrange(len(mine)))
                    conn.execute("DELETE FROM salesforce.contact WHERE _row_id = %s", (victim,))
                if i % 50 == 49:
                    # from the third time on more than 100 rows: captured in batches,
                    # among one-row changes of the same rows before and after it
                    update_all(conn, f"all{i}", mine)
    except Exception as exc:  # reported by the test, not lost in a thread
        errors.append(exc)


def update_all(conn, title, rows):
    """One statement changing many rows. It can deadlock with the worker bringing rows in
    line with Salesforce's answers (which it does one by one); the worker waits longer
    before giving up, so it is this statement that Postgres cancels, and an application
    runs it again, as it does for any deadlock."""
    for _ in range(20):
        try:
            conn.execute(
                "UPDATE salesforce.contact SET title = %s WHERE _row_id = ANY(%s)", (title, rows))
            return
        except psycopg.errors.DeadlockDetected:
            continue
    raise AssertionError("the statement deadlocked 20 times in a row")


def run_load(cluster, tag):
    errors = []
    threads = [
        threading.Thread(target=application_load, args=(cluster, tag, n, errors))
        for n in range(CONNECTIONS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def table_state(conn, tag):
    return {
        r[0]: r[1:]
        for r in query_rows(
            conn,
            "SELECT id, last_name, title, email FROM salesforce.contact WHERE last_name LIKE %s",
            (f"{tag}-%",),
        )
    }


def salesforce_state(emu, tag):
    return {
        r["Id"]: (r["LastName"], r["Title"], r["Email"])
        for r in sf_records(
            emu, f"SELECT Id, LastName, Title, Email FROM Contact WHERE LastName LIKE '{tag}-%'"
        )
    }


@pytest.mark.parametrize(
    "tag,batch_size,max_batch_wait",
    [("Unbatched", 200, "0 s"), ("Batched", 50, "300 ms")],
)
def test_concurrent_changes_all_reach_salesforce_with_their_fields(env, tag, batch_size, max_batch_wait):
    emu, cluster, conn = env
    conn.execute(
        "SELECT sequin_sf.alter_write_settings(%s, batch_size => %s, max_batch_wait => %s)",
        (SYNC, batch_size, max_batch_wait),
    )
    before = query_value(conn, "SELECT coalesce(max(id), 0) FROM salesforce._sync_write_log")
    run_load(cluster, tag)

    wait_for(
        lambda: query_value(
            conn,
            "SELECT (SELECT count(*) FROM salesforce._sync_write_log"
            "         WHERE id > %s AND state IN ('new', 'pending'))"
            "     + (SELECT count(*) FROM salesforce._sync_write_batch)",
            (before,),
        ) == 0,
        timeout=300,
        what="the write log to drain",
    )
    not_succeeded = query_rows(
        conn,
        "SELECT id, action, state, api_message, \"values\" FROM salesforce._sync_write_log"
        " WHERE id > %s AND state <> 'succeeded' ORDER BY id",
        (before,),
    )
    assert not_succeeded == []
    # no insert was sent without its fields
    assert query_value(
        conn,
        "SELECT count(*) FROM salesforce._sync_write_log WHERE id > %s AND action = 'insert'"
        " AND (\"values\" IS NULL OR NOT \"values\" ? 'last_name')"
        " AND api_message IS DISTINCT FROM 'cancelled: the row was deleted before its insert was sent'",
        (before,),
    ) == 0

    # Salesforce holds exactly the table's rows with their fields, each with its Id.
    # Compared until equal: polling may still be bringing a record's latest version
    # back, or removing a record it saw before its delete was sent.
    kept = CONNECTIONS * (INSERTS_PER_CONNECTION - INSERTS_PER_CONNECTION // 7)

    def converged():
        table, sf = table_state(conn, tag), salesforce_state(emu, tag)
        return table == sf and len(sf) == kept and None not in table

    wait_for(converged, timeout=120, what="the table and Salesforce to hold the same records")
    assert query_value(
        conn,
        "SELECT count(*) FROM salesforce.contact WHERE last_name LIKE %s"
        " AND _write_state IS NOT NULL",
        (f"{tag}-%",),
    ) == 0


"""Capture and two-phase commit: the entries a transaction keeps in memory until it
commits (src/capture/batch.rs) are written when it is prepared, so they survive the
session that prepared it and reach the log only if COMMIT PREPARED makes them real.
No worker is involved: the table is set up by hand, as in tests/sql/."""

import pytest

from harness import Cluster, query_value

TABLE = """
CREATE SCHEMA p;
CREATE TABLE p.z (_row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text UNIQUE,
                  _write_state text, a text);
SELECT sequin_sf._install_write_triggers('p.z'::regclass, 'Z',
    '{"id": "assigned by Salesforce"}', '{"id": "assigned by Salesforce"}', '{}');
"""


@pytest.fixture(scope="module")
def conn():
    cluster = Cluster(settings={"max_prepared_transactions": "4"})
    try:
        with cluster.connect() as c:
            c.execute("CREATE EXTENSION sequin_sf")
            c.execute(TABLE)
            yield c
    finally:
        cluster.destroy()


def entries(conn):
    """Entries in the log and in batches (not unpacked: no worker here)."""
    return query_value(
        conn,
        "SELECT (SELECT count(*) FROM p._sync_write_log)"
        " + (SELECT coalesce(sum(cardinality(ids)), 0) FROM p._sync_write_batch)",
    )


def prepare_inserts(conn, gid, n):
    """A prepared transaction of n one-row INSERTs (beyond 100, kept in memory)."""
    conn.execute("BEGIN")
    for i in range(n):
        conn.execute("INSERT INTO p.z (a) VALUES (%s)", (f"{gid}-{i}",))
    conn.execute(f"PREPARE TRANSACTION '{gid}'")


def test_a_prepared_transaction_keeps_its_entries_until_it_is_committed(conn):
    before = entries(conn)
    prepare_inserts(conn, "kept", 150)
    assert entries(conn) == before  # not committed yet
    conn.execute("COMMIT PREPARED 'kept'")
    assert entries(conn) == before + 150
    assert query_value(
        conn, "SELECT count(*) FROM p._sync_write_batch WHERE table_name = 'z'") >= 1


def test_a_prepared_transaction_rolled_back_leaves_no_entry(conn):
    before = entries(conn)
    prepare_inserts(conn, "dropped", 150)
    conn.execute("ROLLBACK PREPARED 'dropped'")
    assert entries(conn) == before
    # the session goes on capturing as usual
    conn.execute("INSERT INTO p.z (a) VALUES ('after')")
    assert entries(conn) == before + 1

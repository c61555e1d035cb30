"""The org's allocations (sequin_sf.org_limits, crates/engine/src/allocations.rs): read from
/limits and shown per sync with the sync's own share, and a Bulk query job not started
when it would reach into the share a sync leaves to the org's other integrations
(1 - org_usage_ceiling): the backfill reads REST pages instead and says why."""

import pytest

from harness import (Cluster, Emulator, create_emulator_credential, query_rows,
                     query_value, wait_backfilled)

CONTACTS = 300


@pytest.fixture(scope="module")
def env():
    emu = Emulator("--seed", "7", "--generate", f"Account=20,Contact={CONTACTS}")
    cluster = Cluster()
    conn = cluster.connect()
    try:
        cluster.install(conn)
        create_emulator_credential(conn, emu)
        yield emu, conn
    finally:
        conn.close()
        cluster.destroy()
        emu.stop()


def limits(conn, sync):
    """{allocation: (max, remaining, used_share, sync_used_24h, kept_for_others)}, the
    shares as floats."""
    return {r[0]: (r[1], r[2], float(r[3]), r[4], float(r[5])) for r in query_rows(
        conn, "SELECT allocation, max, remaining, used_share, sync_used_24h, kept_for_others"
              " FROM sequin_sf.org_limits WHERE sync_name = %s", (sync,))}


def backfills(conn, sync):
    return dict((r[0], r[1:]) for r in query_rows(
        conn, "SELECT collection, backfill_mode, backfill_note, rows_done FROM sequin_sf.sync_status"
              " WHERE sync_name = %s", (sync,)))


def test_no_bulk_job_starts_into_the_share_left_to_others(env):
    emu, conn = env
    # other clients used 9,500 of the org's 10,000 daily Bulk query jobs: one more
    # would pass the 80% this sync may take
    emu.control("PUT", "limits", {"bulk_query_jobs_elsewhere": 9_500})
    conn.execute("SELECT sequin_sf.create_sync('lean', credential => 'emu',"
                 " collections => ARRAY['Contact'], bulk_threshold => 1, schema_name => 'lean')")
    wait_backfilled(conn, "lean")
    mode, note, done = backfills(conn, "lean")["Contact"]
    assert (mode, done) == ("rest", CONTACTS)
    assert "500 of its 10000 DailyBulkV2QueryJobs left" in note
    assert "20% this sync leaves to other integrations" in note
    assert query_value(conn, "SELECT count(*) FROM lean.contact") == CONTACTS
    # no job was created: the org still has 500 left
    assert emu.stats()["endpoints"]["bulk2_query"] == 0
    got = limits(conn, "lean")
    assert got["DailyBulkV2QueryJobs"][:4] == (10_000, 500, pytest.approx(0.95), 0)
    api = got["DailyApiRequests"]
    assert api[0] == 100_000 and api[3] > 0 and api[4] == pytest.approx(0.2)
    assert {"DailyBulkV2QueryFileStorageMB", "DailyDeliveredPlatformEvents"} <= set(got)


def test_a_bulk_job_starts_while_the_org_has_enough_and_is_counted(env):
    emu, conn = env
    emu.control("PUT", "limits", {"bulk_query_jobs_elsewhere": 0})
    conn.execute("SELECT sequin_sf.create_sync('ample', credential => 'emu',"
                 " collections => ARRAY['Contact'], bulk_threshold => 1, schema_name => 'ample')")
    wait_backfilled(conn, "ample")
    mode, note, done = backfills(conn, "ample")["Contact"]
    assert (mode, note, done) == ("bulk", None, CONTACTS)
    assert limits(conn, "ample")["DailyBulkV2QueryJobs"][3] == 1


def test_result_storage_counts_too(env):
    emu, conn = env
    emu.control("PUT", "limits", {"bulk_storage_mb_elsewhere": 900_000})
    conn.execute("SELECT sequin_sf.create_sync('stored', credential => 'emu',"
                 " collections => ARRAY['Account'], bulk_threshold => 1, schema_name => 'stored')")
    wait_backfilled(conn, "stored")
    mode, note, done = backfills(conn, "stored")["Account"]
    assert (mode, done) == ("rest", 20)
    assert "DailyBulkV2QueryFileStorageMB" in note

"""The org's allocations (sequin_sf.org_limits, crates/engine/src/allocations.rs): read from
/limits and shown per sync with the sync's own share, and a Bulk query job not started
when it would reach into the share a sync leaves to the org's other integrations
(1 - org_usage_ceiling): the backfill reads REST pages instead and says why."""

import pytest

from harness import (SIDECAR_MODE, Cluster, Emulator, create_emulator_credential, query_rows,
                     query_value, wait_backfilled, wait_for)

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
    # the job's results, downloaded, count against the org's daily result storage: a
    # few hundred Contacts are part of one MB
    wait_for(lambda: limits(conn, "ample")["DailyBulkV2QueryFileStorageMB"][3] == 1,
             what="the sync's share of the result storage")
    assert query_value(conn, "SELECT sum(bulk_result_bytes) FROM sequin_sf._api_usage"
                             " WHERE sync_name = 'ample'") > 10_000


def test_result_storage_counts_too(env):
    emu, conn = env
    emu.control("PUT", "limits", {"bulk_storage_mb_elsewhere": 900_000})
    conn.execute("SELECT sequin_sf.create_sync('stored', credential => 'emu',"
                 " collections => ARRAY['Account'], bulk_threshold => 1, schema_name => 'stored')")
    wait_backfilled(conn, "stored")
    mode, note, done = backfills(conn, "stored")["Account"]
    assert (mode, done) == ("rest", 20)
    assert "DailyBulkV2QueryFileStorageMB" in note


def test_once_the_orgs_long_running_requests_are_all_taken_the_sync_sends_one_at_a_time(
        start_emulator, db):
    """Salesforce refuses requests while the org's long-running requests (20 s or more,
    ConcurrentPerOrgLongTxn, shared by every integration) are all taken. A sync that was
    refused makes room: for five minutes it sends one request at a time, whatever its
    max_concurrent_requests, and says so. Here other integrations hold all 5 of the
    org's long-running requests, then let them go; the backfill that follows, allowed 4
    at once and answered 100 ms late, has never more than one request served at once."""
    emu = start_emulator("--seed", "9", "--generate", "Contact=20000", "--latency-ms", "100")
    create_emulator_credential(db, emu)
    with db.transaction():
        db.execute("SELECT sequin_sf.create_sync('held', credential => 'emu', collections => ARRAY['Contact'],"
                   " schema_name => 'held', rate_limit_requests => 100000, max_concurrent_requests => 4,"
                   " bulk_threshold => 1000000000)")
        db.execute("SELECT sequin_sf.pause_sync('held')")
    if SIDECAR_MODE:
        # sequin-sf's own reads of the org for SQL are not the sync's requests
        wait_for(lambda: query_value(db, "SELECT count(*) FROM sequin_sf._org_fields"
                                         " WHERE credential = 'emu'"), what="Contact described")
    emu.control("PUT", "limits", {"long_request_limit": 5, "long_requests_elsewhere": 5})
    db.execute("SELECT sequin_sf.resume_sync('held')")
    wait_for(lambda: "ConcurrentPerOrgLongTxn" in (query_value(
        db, "SELECT last_error FROM sequin_sf.syncs WHERE name = 'held'") or ""),
        timeout=60, what="the refusal shown")
    emu.control("PUT", "limits", {"long_requests_elsewhere": 0})
    emu.control("POST", "stats/reset")
    seen = set()

    def backfilled():
        seen.add(query_value(db, "SELECT last_error FROM sequin_sf.syncs WHERE name = 'held'") or "")
        return query_value(db, "SELECT count(*) FROM held.contact") == 20000

    wait_for(backfilled, timeout=300, what="the backfill")
    assert emu.stats()["peak_requests_in_flight"] == 1
    assert any("holding back" in e and "one request at a time" in e for e in seen), seen


def test_near_the_api_ceiling_a_backfill_reads_through_bulk_where_that_costs_fewer_requests(
        start_emulator, db):
    """20,000 Contacts, below the default bulk_threshold of 50,000: REST pages as a rule
    (10 requests). With the org's daily API requests at 75%, within 10 points of the
    sync's 80% ceiling, the backfill takes one Bulk query job (about 5 requests) and
    says why."""
    emu = start_emulator("--seed", "3", "--generate", "Contact=20000")
    emu.control("PUT", "limits", {"api_limit": 100_000, "api_used": 75_000})
    create_emulator_credential(db, emu)
    db.execute("SELECT sequin_sf.create_sync('thrifty', credential => 'emu',"
               " collections => ARRAY['Contact'], schema_name => 'thrifty')")
    wait_backfilled(db, "thrifty")
    mode, note, done = backfills(db, "thrifty")["Contact"]
    assert (mode, done) == ("bulk", 20_000)
    assert "below bulk_threshold" in note and "within 10 points of this sync's ceiling (80%)" in note
    assert "against 10 for REST pages" in note
    assert query_value(db, "SELECT count(*) FROM thrifty.contact") == 20_000

"""The worker as a DBA meets it at the server level: a misnamed database, a shutdown
while writes are in flight, a data directory without its key file. Each test has its
own cluster, since each stops, restarts or damages it."""

import os
import time

import psycopg
import pytest

from harness import (
    create_emulator_credential,
    query_value,
    wait_backfilled,
    wait_for,
    worker_pid,
)


def test_a_missing_database_is_reported_once_and_waited_for(cluster):
    conn = cluster.connect()
    conn.execute("ALTER SYSTEM SET sequin_sf.database_name = 'crm_later'")
    conn.close()
    cluster.restart()
    conn = cluster.connect()
    warning = 'database "crm_later" named by sequin_sf.database_name does not exist'
    wait_for(lambda: warning in cluster.log(), what="the missing-database warning")
    # a restart storm would try (and fail) to connect every few seconds: give it the
    # time for a few attempts, then count
    time.sleep(8)
    log = cluster.log()
    assert log.count(warning) == 1
    assert 'FATAL:  database "crm_later" does not exist' not in log
    assert worker_pid(conn) is None
    conn.execute("CREATE DATABASE crm_later")
    wait_for(
        lambda: query_value(
            conn,
            "SELECT datname FROM pg_stat_activity WHERE backend_type = 'sequin_sf'",
        ) == "crm_later",
        timeout=120,
        what="the worker to start once the database exists",
    )
    conn.close()


def test_shutdown_during_a_write_batch_does_not_wait_for_salesforce(start_emulator, cluster):
    emu = start_emulator("--seed", "9", "--generate", "Contact=10")
    conn = cluster.connect()
    conn.execute("CREATE EXTENSION sequin_sf")
    create_emulator_credential(conn, emu)
    conn.execute(
        "SELECT sequin_sf.create_sync('s', credential => 'emu', collections => ARRAY['Contact'])"
    )
    wait_backfilled(conn, "s")
    # every call now takes ten minutes: a shutdown that waited for the answer would
    # outlast pg_ctl's own 60 s wait, and the stop below would fail
    emu.control("PUT", "limits", {"latency_ms": 600_000})
    conn.execute("INSERT INTO salesforce.contact (last_name) VALUES ('InFlight')")
    wait_for(
        lambda: query_value(
            conn, "SELECT count(*) FROM salesforce._sync_write_log WHERE state = 'pending'"
        ),
        timeout=120,
        what="the write to be in flight",
    )
    conn.close()
    cluster.stop()  # pg_ctl -m fast waits up to 60 s for the server to stop
    assert not os.path.exists(os.path.join(cluster.datadir, "postmaster.pid"))
    assert "sequin_sf worker stopping" in cluster.log()
    emu.control("PUT", "limits", {"latency_ms": 0})
    cluster.start()
    conn = cluster.connect()
    # the create may have reached Salesforce: it is surfaced, not sent again
    wait_for(
        lambda: query_value(
            conn, "SELECT _write_state FROM salesforce.contact WHERE last_name = 'InFlight'"
        ) == "unknown",
        timeout=120,
        what="the interrupted create to be surfaced as unknown",
    )
    conn.close()


def test_a_missing_key_file_is_an_error_not_a_new_key(start_emulator, cluster):
    emu = start_emulator("--seed", "9", "--generate", "Contact=5")
    conn = cluster.connect()
    conn.execute("CREATE EXTENSION sequin_sf")
    create_emulator_credential(conn, emu)
    key = os.path.join(cluster.datadir, "sequin_sf.key")
    assert os.path.exists(key)
    os.rename(key, key + ".away")
    try:
        for sql in (
            "SELECT * FROM sequin_sf.available_collections('emu')",
            "SELECT sequin_sf.create_credential('second', kind => 'refresh_token',"
            " client_id => 'a', client_secret => 'b', refresh_token => 'c')",
        ):
            with pytest.raises(psycopg.Error) as info:
                conn.execute(sql)
            assert "is missing" in str(info.value), str(info.value)
        # nor in another database of the cluster, which has no credential of its own
        conn.execute("CREATE DATABASE other")
        with cluster.connect(dbname="other") as other:
            other.execute("CREATE EXTENSION sequin_sf")
            with pytest.raises(psycopg.Error) as info:
                other.execute(
                    "SELECT sequin_sf.create_credential('first', kind => 'refresh_token',"
                    " client_id => 'a', client_secret => 'b', refresh_token => 'c')")
            assert "is missing" in str(info.value), str(info.value)
        assert not os.path.exists(key)
    finally:
        os.rename(key + ".away", key)
    assert query_value(conn, "SELECT count(*) FROM sequin_sf.available_collections('emu')") > 0
    conn.close()

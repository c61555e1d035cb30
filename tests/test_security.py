"""Living in a production database: an application role that is not a superuser reads
and writes synced tables with ordinary grants and cannot bypass the write capture; the
extension never destroys a relation it did not create; management functions refuse bad
arguments and are not callable by PUBLIC; text from Salesforce cannot break generated
code. A real cluster, the real worker and the emulator, as the rest of the suite."""

import psycopg
import pytest

from harness import (
    OWNER,
    SIDECAR_MODE,
    create_emulator_credential,
    query_rows,
    query_value,
    sf_records,
    synced_org,
    wait_backfilled,
    wait_for,
)

SYNC = "sec"
APP = "app_user"


@pytest.fixture(scope="module")
def env():
    with synced_org(("--seed", "3", "--generate", "Account=10,Contact=20"), SYNC,
                    ["Contact", "Account"]) as (emu, cluster, conn):
        # how an application connects: ordinary table privileges, nothing else
        conn.execute(f"CREATE ROLE {APP} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA salesforce TO {APP}")
        conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON salesforce.contact TO {APP}"
        )
        conn.execute(f"GRANT SELECT, UPDATE (description) ON salesforce.account TO {APP}")
        yield emu, cluster, conn


def app_connect(cluster):
    return cluster.connect(user=APP)


def refused(conn, sql, params=None):
    """The error a statement raises (the test fails if it succeeds)."""
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    return info.value


def await_writes(conn):
    return query_rows(conn, "SELECT * FROM sequin_sf.await_writes('120 seconds')")[0]


def contact_ids(conn, n, offset):
    return [
        r[0]
        for r in query_rows(
            conn,
            "SELECT id FROM salesforce.contact WHERE id IS NOT NULL ORDER BY id"
            " OFFSET %s LIMIT %s",
            (offset, n),
        )
    ]


# --- never destroy what the extension did not create ---------------------------------


def test_a_user_table_in_the_way_is_refused_and_kept(env):
    _, _, conn = env
    conn.execute("CREATE SCHEMA crm")
    if SIDECAR_MODE:
        # beside the database the syncs' tables are made by sequin-sf's role: without
        # CREATE on the schema it would be refused for that first
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA crm TO {OWNER}")
    conn.execute("CREATE TABLE crm.account (id int PRIMARY KEY, name text)")
    conn.execute("INSERT INTO crm.account VALUES (1, 'mine'), (2, 'also mine')")
    err = refused(
        conn,
        "SELECT sequin_sf.create_sync('crm', credential => 'emu',"
        " collections => ARRAY['Account'], schema_name => 'crm')",
    )
    assert err.sqlstate == "42P07"
    assert "crm.account" in str(err)
    assert query_value(conn, "SELECT count(*) FROM crm.account") == 2
    assert query_value(conn, "SELECT count(*) FROM sequin_sf.syncs WHERE name = 'crm'") == 0

    # the same for a collection added to a running sync whose schema holds a user table
    conn.execute("CREATE TABLE salesforce.opportunity (note text)")
    conn.execute("INSERT INTO salesforce.opportunity VALUES ('keep me')")
    err = refused(conn, "SELECT sequin_sf.add_collection(%s, 'Opportunity')", (SYNC,))
    assert err.sqlstate == "42P07" and "salesforce.opportunity" in str(err)
    assert query_value(conn, "SELECT note FROM salesforce.opportunity") == "keep me"
    conn.execute("DROP TABLE salesforce.opportunity")

    # a table of the user's elsewhere in the schema is not the sync's: a collection added
    # beside it is created (and, where the publication lists tables, it is not published)
    conn.execute("CREATE TABLE salesforce.my_notes (note text)")
    conn.execute("SELECT sequin_sf.add_collection(%s, 'Opportunity')", (SYNC,))
    wait_for(lambda: query_value(
        conn, "SELECT state = 'live' FROM sequin_sf._collections"
              " WHERE sync_name = %s AND object_name = 'Opportunity'", (SYNC,)),
        what="Opportunity synced")
    assert query_value(conn, "SELECT count(*) FROM sequin_sf._collections"
                             " WHERE sync_name = %s AND last_error IS NOT NULL", (SYNC,)) == 0
    listed = query_value(conn, "SELECT EXISTS (SELECT 1 FROM pg_publication_namespace)")
    if not listed:
        assert query_value(conn, "SELECT count(*) FROM pg_publication_tables"
                                 " WHERE tablename = 'my_notes'") == 0
    conn.execute("SELECT sequin_sf.remove_collection(%s, 'Opportunity')", (SYNC,))
    conn.execute("DROP TABLE salesforce.my_notes")


# --- an application role with ordinary grants ----------------------------------------


def test_an_application_role_writes_through_capture_without_log_grants(env):
    emu, cluster, conn = env
    upd, dele = contact_ids(conn, 2, 0)
    with app_connect(cluster) as app:
        app.execute("UPDATE salesforce.contact SET title = 'From app' WHERE id = %s", (upd,))
        app.execute("INSERT INTO salesforce.contact (last_name) VALUES ('AppInserted')")
        app.execute("DELETE FROM salesforce.contact WHERE id = %s", (dele,))
        # a statement of more than 100 rows is captured in batches, as the application too
        app.execute("INSERT INTO salesforce.contact (last_name) SELECT 'AppBulk' FROM generate_series(1, 120)")
        # the write log is not the application's to read or write
        for sql in (
            "SELECT * FROM salesforce._sync_write_log",
            "INSERT INTO salesforce._sync_write_log (table_name, object_name, row_id, action,"
            " api_id) VALUES ('contact', 'Contact', 1, 'delete', '003000000000001AAA')",
            "UPDATE salesforce._sync_write_log SET state = 'new'",
            "DELETE FROM salesforce._sync_write_log",
            # nor are the batches of large statements waiting to be unpacked into it
            "SELECT * FROM salesforce._sync_write_batch",
            "DELETE FROM salesforce._sync_write_batch",
            "SELECT sequin_sf._batch_rows_json('[]', ARRAY[]::bytea[])",
        ):
            assert refused(app, sql).sqlstate == "42501", sql
    assert await_writes(conn)[1:] == (0, 0)
    assert query_value(
        conn,
        "SELECT count(*) FROM salesforce._sync_write_log WHERE state <> 'succeeded'",
    ) == 0
    by_id = {r["Id"]: r for r in sf_records(emu, "SELECT Id, Title, LastName FROM Contact")}
    assert by_id[upd]["Title"] == "From app"
    assert dele not in by_id
    assert any(r["LastName"] == "AppInserted" for r in by_id.values())
    assert sum(r["LastName"] == "AppBulk" for r in by_id.values()) == 120


def test_capture_cannot_be_switched_off_by_a_session(env):
    _, cluster, conn = env
    [cid] = contact_ids(conn, 1, 3)
    with app_connect(cluster) as app:
        if SIDECAR_MODE:
            # without the library the setting is not reserved: the application may set
            # it, and capture ignores it in sessions not of sequin-sf's role
            app.execute("SET sequin_sf.applying = on")
        else:
            err = refused(app, "SET sequin_sf.applying = on")
            assert err.sqlstate == "42501"
            err = refused(app, "SELECT set_config('sequin_sf.applying', 'on', false)")
            assert err.sqlstate == "42501"
        before = query_value(conn, "SELECT max(id) FROM salesforce._sync_write_log")
        app.execute("UPDATE salesforce.contact SET title = 'still captured' WHERE id = %s", (cid,))
    assert query_value(
        conn,
        "SELECT count(*) FROM salesforce._sync_write_log WHERE id > %s AND api_id = %s",
        (before, cid),
    ) == 1
    await_writes(conn)


def test_column_privileges_and_row_level_security_still_apply(env):
    _, cluster, conn = env
    conn.execute("ALTER TABLE salesforce.contact ENABLE ROW LEVEL SECURITY")
    conn.execute(
        f"CREATE POLICY app_rows ON salesforce.contact TO {APP}"
        " USING (last_name LIKE 'A%') WITH CHECK (last_name LIKE 'A%')"
    )
    try:
        before = query_value(conn, "SELECT max(id) FROM salesforce._sync_write_log")
        visible = query_value(conn, "SELECT count(*) FROM salesforce.contact WHERE last_name LIKE 'A%'")
        with app_connect(cluster) as app:
            app.execute("UPDATE salesforce.contact SET title = 'rls'")
            err = refused(app, "INSERT INTO salesforce.contact (last_name) VALUES ('Zed')")
            assert err.sqlstate == "42501"
            # only UPDATE (title) was granted on account
            assert refused(app, "UPDATE salesforce.account SET name = 'x'").sqlstate == "42501"
        # (more than 100 rows: their entries reach the log when the worker unpacks them)
        await_writes(conn)
        captured = query_value(
            conn, "SELECT count(*) FROM salesforce._sync_write_log WHERE id > %s", (before,)
        )
        assert captured == visible
    finally:
        conn.execute("DROP POLICY app_rows ON salesforce.contact")
        conn.execute("ALTER TABLE salesforce.contact DISABLE ROW LEVEL SECURITY")
    await_writes(conn)


def test_management_functions_are_not_for_public(env):
    _, cluster, _ = env
    with app_connect(cluster) as app:
        for sql in (
            "SELECT sequin_sf.create_credential('x', kind => 'refresh_token',"
            " client_id => 'a', client_secret => 'b', refresh_token => 'c')",
            "SELECT sequin_sf.pause_sync('sec')",
            "SELECT sequin_sf.drop_sync('sec')",
            "SELECT sequin_sf.retry_writes()",
            "SELECT sequin_sf.alter_write_settings('sec', batch_size => 1)",
            "SELECT sequin_sf._seal_credential_secrets('emu', 'a', 'b', 'c', 'd')",
            "SELECT sequin_sf._write_settle('salesforce', '[]')",
        ):
            assert refused(app, sql).sqlstate == "42501", sql
        # the status views stay readable
        assert query_value(app, "SELECT count(*) FROM sequin_sf.sync_status") >= 2


# --- every argument validated --------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT sequin_sf.alter_sync('sec', poll_overlap => '-1 hour')",
        "SELECT sequin_sf.alter_sync('sec', poll_overlap => '2 days')",
        "SELECT sequin_sf.alter_sync('sec', event_retention => '-1 day')",
        "SELECT sequin_sf.alter_sync('sec', describe_interval => '0')",
        "SELECT sequin_sf.alter_sync('sec', deleted_interval => '0')",
        "SELECT sequin_sf.alter_sync('sec', org_usage_ceiling => 1.5)",
        "SELECT sequin_sf.alter_sync('sec', bulk_threshold => 0)",
        "SELECT sequin_sf.alter_sync('sec', rate_limit_requests => 0)",
        "SELECT sequin_sf.alter_sync('sec', rate_limit_interval => '-1 hour')",
        "SELECT sequin_sf.alter_sync('sec', max_concurrent_requests => 0)",
        "SELECT sequin_sf.alter_sync(NULL)",
        "SELECT sequin_sf.await_writes(NULL)",
        "SELECT sequin_sf.await_writes('-1 s')",
        "SELECT sequin_sf.alter_write_settings('sec', max_batch_wait => '-1 s')",
        "SELECT sequin_sf.alter_write_settings('sec', write_log_retention => '-1 day')",
        "SELECT sequin_sf.alter_write_settings('sec', external_id_fields => '[1]')",
        pytest.param(
            "SELECT sequin_sf.create_credential('plain', kind => 'refresh_token',"
            " login_url => 'http://login.example.com', client_id => 'a', client_secret => 'b',"
            " refresh_token => 'c')",
            marks=pytest.mark.extension_only("credentials are made by sequin-sf credential create"
                                             " there, and SQL refuses them (test_plain.py)")),
        "SELECT sequin_sf.create_sync('bad', credential => 'emu', collections => ARRAY['Contact'],"
        " schema_name => 'other', poll_interval_is_not_a_parameter => 1)",
    ],
)
def test_invalid_arguments_are_refused_with_a_hint(env, sql):
    _, _, conn = env
    before = query_rows(conn, "SELECT * FROM sequin_sf.syncs WHERE name = 'sec'")
    err = refused(conn, sql)
    assert err.sqlstate in ("22023", "22004", "42883"), (err.sqlstate, str(err))
    if err.sqlstate != "42883":
        assert err.diag.message_hint, str(err)
    assert query_rows(conn, "SELECT * FROM sequin_sf.syncs WHERE name = 'sec'") == before


# --- text from Salesforce cannot break generated code -------------------------------


def test_a_picklist_value_cannot_end_the_generated_function_body(env):
    emu, _, conn = env
    evil = "x$body$; SELECT 1; $body$"
    conn.execute("SELECT sequin_sf.alter_sync(%s, describe_interval => '1 second')", (SYNC,))
    emu.control(
        "POST",
        "schema/Account/fields",
        {"name": "Risk_Band__c", "type": "picklist", "restricted": True, "values": ["Gold", evil]},
    )
    wait_for(
        lambda: query_value(
            conn,
            "SELECT count(*) FROM sequin_sf.columns WHERE schema_name = 'salesforce'"
            " AND table_name = 'account' AND column_name = 'risk_band__c'",
        ) == 1,
        timeout=180,
        what="the new picklist field to become a column",
    )
    [acc] = [r[0] for r in query_rows(conn, "SELECT id FROM salesforce.account LIMIT 1")]
    # capture knows both values: the evil one is allowed, others refused
    conn.execute("UPDATE salesforce.account SET risk_band__c = %s WHERE id = %s", (evil, acc))
    assert refused(
        conn, "UPDATE salesforce.account SET risk_band__c = 'Platinum' WHERE id = %s", (acc,)
    ).sqlstate == "23514"
    assert await_writes(conn)[1:] == (0, 0)
    assert query_value(
        conn,
        "SELECT count(*) FROM sequin_sf.sync_status WHERE sync_name = %s AND state <> 'live'",
        (SYNC,),
    ) == 0


# --- writes are sent once, to the right record ---------------------------------------


def test_a_5xx_answer_to_a_create_leaves_it_unknown_and_a_blanket_retry_skips_it(env):
    emu, _, conn = env
    before = query_value(conn, "SELECT max(id) FROM salesforce._sync_write_log")
    emu.control("POST", "faults", {"kind": "500", "count": 1, "path_contains": "/composite"})
    try:
        conn.execute("INSERT INTO salesforce.contact (last_name) VALUES ('GatewayError')")
        ok, bad, _ = await_writes(conn)
    finally:
        emu.control("DELETE", "faults")
    assert (ok, bad) == (0, 1)
    log_id, state, result, message = query_rows(
        conn,
        "SELECT id, state, api_result, api_message FROM salesforce._sync_write_log WHERE id > %s",
        (before,),
    )[0]
    assert state == "failed" and result is None and message.startswith("outcome unknown")
    assert query_value(
        conn, "SELECT _write_state FROM salesforce.contact WHERE last_name = 'GatewayError'"
    ) == "unknown"
    # a blanket retry says what it leaves out; naming the entry re-sends it
    notices = []

    def keep(diag):
        notices.append(diag.message_primary)

    conn.add_notice_handler(keep)
    try:
        assert query_value(conn, "SELECT sequin_sf.retry_writes(%s)", (SYNC,)) == 0
    finally:
        conn.remove_notice_handler(keep)
    assert any("unknown outcome were not re-sent" in n for n in notices), notices
    assert query_value(conn, "SELECT sequin_sf.retry_writes(ids => ARRAY[%s]::bigint[])", (log_id,)) == 1
    assert await_writes(conn)[:2] == (1, 0)


def test_markers_of_a_recreated_sync_never_match_the_old_records(env):
    emu, _, conn = env

    def make_sync():
        conn.execute(
            "SELECT sequin_sf.create_sync('mk', credential => 'emu', collections => ARRAY['Contact'],"
            " schema_name => 'mk')"
        )
        wait_backfilled(conn, "mk")
        conn.execute(
            "SELECT sequin_sf.alter_write_settings('mk',"
            " external_id_fields => '{\"Contact\": \"External_Id__c\"}')"
        )

    def insert(name):
        conn.execute("INSERT INTO mk.contact (last_name) VALUES (%s)", (name,))
        assert await_writes(conn)[1:] == (0, 0)
        return query_value(conn, "SELECT id FROM mk.contact WHERE last_name = %s", (name,))

    make_sync()
    first = insert("MarkerOne")
    conn.execute("SELECT sequin_sf.drop_sync('mk')")
    make_sync()  # same schema: the log's ids start again at 1
    second = insert("MarkerTwo")
    # two records, each with its own marker: the second create did not upsert onto the first
    records = {
        r["Id"]: r
        for r in sf_records(emu, "SELECT Id, LastName, External_Id__c FROM Contact")
    }
    assert first != second
    assert records[first]["LastName"] == "MarkerOne"
    assert records[second]["LastName"] == "MarkerTwo"
    assert records[first]["External_Id__c"].startswith("sqsf-")
    assert records[first]["External_Id__c"] != records[second]["External_Id__c"]
    conn.execute("SELECT sequin_sf.drop_sync('mk')")


# --- failures show where the operator looks; locks are waited for with a timeout ------


def test_a_lock_held_by_an_idle_transaction_stalls_no_other_sync(env):
    emu, cluster, conn = env
    conn.execute(
        "SELECT sequin_sf.create_sync('other', credential => 'emu', collections => ARRAY['Account'],"
        " schema_name => 'other')"
    )
    wait_backfilled(conn, "other")
    [acc] = [r[0] for r in query_rows(conn, "SELECT id FROM other.account LIMIT 1")]
    with cluster.connect() as idle:
        idle.execute("BEGIN")
        idle.execute("LOCK TABLE salesforce._sync_write_log IN ACCESS EXCLUSIVE MODE")
        # the writer of sync sec cannot read its queue: it says so and moves on
        wait_for(
            lambda: "lock timeout" in (query_value(
                conn, "SELECT last_error FROM sequin_sf.syncs WHERE name = %s", (SYNC,)
            ) or ""),
            timeout=120,
            what="the writer's error in sequin_sf.syncs",
        )
        assert "writing back failed" in query_value(
            conn, "SELECT last_error FROM sequin_sf.sync_status WHERE sync_name = %s LIMIT 1", (SYNC,)
        )
        # meanwhile the other sync keeps up with Salesforce
        emu.control("PATCH", f"records/Account/{acc}", {"Description": "while locked"})
        wait_for(
            lambda: query_value(
                conn, "SELECT description FROM other.account WHERE id = %s", (acc,)
            ) == "while locked",
            timeout=120,
            what="the other sync to apply a change",
        )
        idle.execute("ROLLBACK")
    wait_for(
        lambda: query_value(
            conn, "SELECT last_error FROM sequin_sf.syncs WHERE name = %s", (SYNC,)
        ) is None,
        timeout=120,
        what="the error to clear once the lock is gone",
    )
    conn.execute("SELECT sequin_sf.drop_sync('other')")


# --- secrets ---------------------------------------------------------------------------


@pytest.mark.extension_only("the server reads no secrets file beside the database: sequin-sf"
                             " credential create --secrets-file does (test_plain.py)")
def test_secrets_can_come_from_a_server_file_and_only_a_superuser_may_name_one(env, tmp_path):
    emu, cluster, conn = env
    import json
    import os
    import shutil

    from harness import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN

    path = os.path.join(cluster.dir, "sf-secrets.json")
    with open(path, "w") as f:
        json.dump({"client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}, f)
    shutil.chown(path, "postgres", "postgres")
    os.chmod(path, 0o600)
    conn.execute(
        "SELECT sequin_sf.create_credential('fromfile', kind => 'refresh_token', login_url => %s,"
        " client_id => %s, secrets_file => %s)",
        (emu.base_url, CLIENT_ID, path),
    )
    names = query_rows(conn, "SELECT name FROM sequin_sf.available_collections('fromfile')")
    assert ("Contact",) in names
    # a management role that is not a superuser cannot make the server read a file
    conn.execute("CREATE ROLE sf_admin LOGIN")
    conn.execute("SELECT sequin_sf.grant_management('sf_admin')")
    with cluster.connect(user="sf_admin") as admin:
        err = refused(
            admin,
            "SELECT sequin_sf.create_credential('x', kind => 'refresh_token', login_url => %s,"
            " client_id => %s, secrets_file => '/etc/passwd')",
            (emu.base_url, CLIENT_ID),
        )
        assert err.sqlstate == "42501"
        # but it can manage syncs without any other grant
        assert query_value(admin, "SELECT count(*) FROM sequin_sf.credentials") >= 2
        admin.execute("SELECT sequin_sf.pause_sync(%s)", (SYNC,))
        admin.execute("SELECT sequin_sf.resume_sync(%s)", (SYNC,))
    conn.execute("SELECT sequin_sf.drop_credential('fromfile')")


def test_a_sealed_secret_does_not_open_for_another_credential(env):
    emu, _, conn = env
    create_emulator_credential(conn, emu, name="twin")
    conn.execute(
        "UPDATE sequin_sf._credentials SET secret = (SELECT secret FROM sequin_sf._credentials"
        " WHERE name = 'emu') WHERE name = 'twin'"
    )
    if SIDECAR_MODE:
        # sequin-sf opens the secret when a sync needs it: the sync says why it cannot
        conn.execute("SELECT sequin_sf.create_sync('twin', credential => 'twin',"
                     " collections => ARRAY['Account'], schema_name => 'twin')")
        error = wait_for(lambda: query_value(
            conn, "SELECT last_error FROM sequin_sf.syncs WHERE name = 'twin'"),
            what="the sync's error")
        assert "not stored for this credential" in error, error
        conn.execute("SELECT sequin_sf.drop_sync('twin')")
    else:
        err = refused(conn, "SELECT * FROM sequin_sf.available_collections('twin')")
        assert "not stored for this credential" in str(err)
    conn.execute("SELECT sequin_sf.drop_credential('twin')")


def test_a_picklist_value_added_in_salesforce_becomes_writable(env):
    """Write rules follow the describe: a value an admin adds to a restricted picklist is
    accepted once the describe shows it (before, it is refused as unknown)."""
    emu, _, conn = env
    conn.execute("SELECT sequin_sf.alter_sync(%s, describe_interval => '1 second')", (SYNC,))
    emu.control("POST", "schema/Contact/fields",
                {"name": "Segment__c", "type": "picklist", "restricted": True, "values": ["A", "B"]})
    wait_for(lambda: query_value(
        conn, "SELECT count(*) FROM sequin_sf.columns WHERE table_name = 'contact'"
        " AND column_name = 'segment__c'") == 1, timeout=180, what="the picklist column")
    [cid] = contact_ids(conn, 1, 5)
    assert refused(conn, "UPDATE salesforce.contact SET segment__c = 'C' WHERE id = %s",
                   (cid,)).sqlstate == "23514"
    emu.control("PATCH", "schema/Contact/fields/Segment__c", {"values": ["A", "B", "C"]})
    wait_for(lambda: "C" in (query_value(
        conn, "SELECT picklist_values FROM sequin_sf.columns WHERE table_name = 'contact'"
        " AND column_name = 'segment__c'") or []), timeout=180, what="the new picklist value")
    conn.execute("UPDATE salesforce.contact SET segment__c = 'C' WHERE id = %s", (cid,))
    assert await_writes(conn)[1:] == (0, 0)
    assert {r["Id"]: r["Segment__c"] for r in sf_records(
        emu, "SELECT Id, Segment__c FROM Contact")}[cid] == "C"

"""ALTER EXTENSION sequin_sf UPDATE from the previous release, with its configuration
in place: a database at 0.1.0 (its install script is kept in sql/releases/) holding a
credential sealed the way 0.1.0 sealed it and a sync, is updated and then syncs and
writes back.

What this test cannot do: run the 0.1.0 library itself (only the current one is built),
so the old release's worker never created tables here. Until the update, the current
worker runs no sync in a database whose extension is older than the library; that is
checked too."""

import json
import os
import shutil

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    query_rows,
    query_value,
    sf_records,
    wait_backfilled,
    wait_for,
)


# What makes up the extension's own objects, compared between an updated and a fresh
# install (order-independent text, so that a difference shows which object differs).
CATALOG_QUERIES = {
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosecdef,
               p.proconfig::text, p.proacl::text
          FROM pg_proc p WHERE p.pronamespace = 'sequin_sf'::regnamespace ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attacl::text
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE c.relnamespace = 'sequin_sf'::regnamespace AND a.attnum > 0
           AND NOT a.attisdropped ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'sequin_sf'::regnamespace ORDER BY 1, 2""",
    "relations": """
        SELECT relname, relkind, relacl::text FROM pg_class
         WHERE relnamespace = 'sequin_sf'::regnamespace ORDER BY 1""",
    "views": """
        SELECT viewname, definition FROM pg_views WHERE schemaname = 'sequin_sf' ORDER BY 1""",
}


def seal_as_0_1_0(datadir, secrets):
    """What 0.1.0 stored: nonce || ChaCha20-Poly1305(JSON), key in $PGDATA/sequin_sf.key."""
    key_path = os.path.join(datadir, "sequin_sf.key")
    key = os.urandom(32)
    with open(key_path, "wb") as f:
        f.write(key)
    shutil.chown(key_path, "postgres", "postgres")
    os.chmod(key_path, 0o600)
    nonce = os.urandom(12)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, json.dumps(secrets).encode(), None)


def test_update_from_0_1_0_keeps_the_configuration_and_syncs(start_emulator, cluster):
    emu = start_emulator("--seed", "4", "--generate", "Account=5,Contact=12")
    conn = cluster.connect()
    conn.execute("CREATE EXTENSION sequin_sf VERSION '0.1.0'")
    sealed = seal_as_0_1_0(cluster.datadir, {
        "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
        "password": None, "private_key": None,
    })
    conn.execute(
        "INSERT INTO sequin_sf._credentials (name, kind, login_url, client_id, secret)"
        " VALUES ('emu', 'refresh_token', %s, %s, %s)",
        (emu.base_url, CLIENT_ID, sealed),
    )
    conn.execute(
        "SELECT sequin_sf.create_sync('old', credential => 'emu', collections => ARRAY['Contact'])"
    )
    warning = "is version 0.1.0 but the library is 0.2.0"
    wait_for(lambda: warning in cluster.log(), what="the worker to say the update is due")
    assert query_value(conn, "SELECT to_regclass('salesforce.contact')") is None

    conn.execute("ALTER EXTENSION sequin_sf UPDATE")
    assert query_value(
        conn, "SELECT extversion FROM pg_extension WHERE extname = 'sequin_sf'"
    ) == "0.2.0"
    # the sync created by 0.1.0 keeps its external id markers
    assert query_value(conn, "SELECT marker_key FROM sequin_sf._syncs WHERE name = 'old'") == ""
    wait_backfilled(conn, "old")
    assert query_value(conn, "SELECT count(*) FROM salesforce.contact") == 12

    # reads and writes go on with the credential sealed by 0.1.0
    [cid] = [r[0] for r in query_rows(conn, "SELECT id FROM salesforce.contact LIMIT 1")]
    emu.control("PATCH", f"records/Contact/{cid}", {"Title": "Upgraded"})
    wait_for(
        lambda: query_value(conn, "SELECT title FROM salesforce.contact WHERE id = %s", (cid,))
        == "Upgraded",
        timeout=120,
        what="a change made in Salesforce after the update",
    )
    conn.execute("INSERT INTO salesforce.contact (last_name) VALUES ('AfterUpdate')")
    assert query_rows(conn, "SELECT * FROM sequin_sf.await_writes('120 seconds')")[0][:2] == (1, 0)
    assert any(r["LastName"] == "AfterUpdate" for r in sf_records(emu, "SELECT LastName FROM Contact"))

    # the updated extension is the fresh one: same functions (definitions, security,
    # settings, grants), tables, constraints, defaults and column grants
    conn.execute("CREATE DATABASE fresh")
    with cluster.connect(dbname="fresh") as fresh:
        fresh.execute("CREATE EXTENSION sequin_sf")
        for what, sql in CATALOG_QUERIES.items():
            assert query_rows(conn, sql) == query_rows(fresh, sql), what

    # the privileges of 0.2.0 hold after the update as after a fresh install
    assert query_value(
        conn, "SELECT has_function_privilege('public', 'sequin_sf.create_sync(text,text,text[],text,integer,interval,integer,boolean,bigint,text)', 'EXECUTE')"
    ) is False
    assert query_value(
        conn, "SELECT has_column_privilege('public', 'sequin_sf.sync_status', 'last_error', 'SELECT')"
    ) is False
    assert query_value(
        conn,
        "SELECT prosecdef FROM pg_proc WHERE oid = 'sequin_sf.create_sync(text,text,text[],text,integer,interval,integer,boolean,bigint,text)'::regprocedure",
    ) is True
    conn.close()

"""Statement kinds capture must handle, each followed through to what Salesforce holds:
COPY, MERGE, writable CTEs, UPDATE ... FROM with a join matching a row twice,
INSERT ... ON CONFLICT, foreign key cascades from user tables, partitions and
inheritance, generated columns, ALTER TABLE while a prepared statement is reused, very
wide text, a refusal inside a large batched statement, and statements a user's row
trigger runs on the synced table.

One emulator, one cluster and one sync serve the whole module; each test uses its own
rows (its own LastName). A test that adds something to the synced table takes it away
again. What Salesforce must hold is known before it is read: from the test's own
values, or from the table read while the sync's worker is stopped (a poll can bring
older values into the table for a while, so the table is waited for, Salesforce is
not). Nothing here asserts on time: waits only bound hangs."""

import contextlib
import csv
import io
import random

import psycopg
import pytest
from psycopg import errors

from harness import (query_rows, query_value, sf_records, synced_org, wait_for,
                     worker_pid)

SYNC = "cs"
OBJECTS = ["Account", "Contact"]


@pytest.fixture(scope="module")
def env():
    with synced_org(("--seed", "29", "--generate", "Account=5,Contact=20"),
                    SYNC, OBJECTS) as org:
        _, _, conn = org
        conn.execute("CREATE SCHEMA app")
        yield org


# --- helpers -------------------------------------------------------------------------

def await_writes(conn, timeout="180 seconds"):
    """(succeeded, failed, unsettled) of this session's writes since its previous call."""
    return query_rows(conn, "SELECT * FROM sequin_sf.await_writes(%s::interval)", (timeout,))[0]


def last_entry_id(conn):
    """The highest log id taken so far, in the log or in a batch not unpacked yet."""
    return query_value(
        conn,
        "SELECT greatest((SELECT coalesce(max(id), 0) FROM salesforce._sync_write_log),"
        " (SELECT coalesce(max(ids[cardinality(ids)]), 0) FROM salesforce._sync_write_batch))",
    )


def captured_since(conn, before):
    """Entries taken after log id `before`, in the log or waiting in batches."""
    return query_value(
        conn,
        "SELECT (SELECT count(*) FROM salesforce._sync_write_log WHERE id > %s)"
        " + (SELECT count(*) FROM salesforce._sync_write_batch b, unnest(b.ids) i(id)"
        "     WHERE i.id > %s)",
        (before, before),
    )


def entries_since(conn, before):
    """(id, action, state, row_id, api_id, values, api_message) of settled-or-not log
    entries after `before`, in log order."""
    return query_rows(
        conn,
        "SELECT id, action, state, row_id, api_id, \"values\", api_message"
        " FROM salesforce._sync_write_log WHERE id > %s ORDER BY id",
        (before,),
    )


def actions(entries):
    counts = {}
    for e in entries:
        counts[e[1]] = counts.get(e[1], 0) + 1
    return counts


def insert_contacts(conn, last_name, first_names, title="orig"):
    """Creates contacts (first_names under one last_name) and waits until Salesforce has
    them; returns {first_name: Salesforce Id}."""
    conn.execute(
        "INSERT INTO salesforce.contact (first_name, last_name, title)"
        " SELECT f, %s, %s FROM unnest(%s::text[]) f",
        (last_name, title, list(first_names)),
    )
    ok, bad, open_ = await_writes(conn)
    assert (bad, open_) == (0, 0)
    ids = dict(query_rows(
        conn, "SELECT first_name, id FROM salesforce.contact WHERE last_name = %s", (last_name,)))
    assert len(ids) == len(first_names) and all(ids.values())
    return ids


# Salesforce field of each column compared
FIELDS = {"first_name": "FirstName", "title": "Title", "department": "Department",
          "description": "Description", "mailing_country": "MailingCountry"}


def sf_contacts(emu, last_name, columns=("title",)):
    """{FirstName: (fields of columns)} of the live Contacts with that LastName in
    Salesforce (each test's first names are unique: a second record is a failure)."""
    fields = [FIELDS[c] for c in columns]
    recs = sf_records(
        emu, f"SELECT Id, FirstName, {', '.join(fields)} FROM Contact"
        f" WHERE LastName = '{last_name}'")
    out = {}
    for r in recs:
        assert r["FirstName"] not in out, f"two records of {r['FirstName']}"
        out[r["FirstName"]] = tuple(r[f] for f in fields)
    return out


def table_contacts(conn, last_name, columns=("title",)):
    """{first_name: (values of columns)} of the table's rows with that last_name, or
    None while a row is not in Salesforce (no Id, or a failed or unknown write)."""
    rows = query_rows(
        conn,
        f"SELECT first_name, id, _write_state, {', '.join(columns)} FROM salesforce.contact"
        " WHERE last_name = %s",
        (last_name,),
    )
    if any(r[1] is None or r[2] is not None for r in rows):
        return None
    return {r[0]: tuple(r[3:]) for r in rows}


def assert_salesforce_and_the_table_hold(conn, emu, last_name, expected, columns=("title",)):
    """Salesforce holds `expected` ({first_name: (values of columns)}) now; the table
    comes to hold it too. (A poll whose page was read before a change was sent may
    bring older values, or a record deleted here, back into the table for a while: the
    table is waited for, Salesforce is not.)"""
    assert sf_contacts(emu, last_name, columns) == expected
    wait_for(lambda: table_contacts(conn, last_name, columns) == expected, timeout=180,
             what=f"the table's {last_name} rows to hold what Salesforce holds")


def is_deleted_in_salesforce(emu, record_id):
    return emu.control("GET", f"records/Contact/{record_id}")["IsDeleted"] is True


@contextlib.contextmanager
def worker_stopped(conn):
    """The sync paused and its worker gone (no poll in flight) inside the block:
    the table holds what statements made it, to be read as what Salesforce must get."""
    conn.execute("SELECT sequin_sf.pause_sync(%s)", (SYNC,))
    try:
        wait_for(lambda: worker_pid(conn, SYNC) is None, timeout=120,
                 what="the sync's worker to stop")
        yield
    finally:
        conn.execute("SELECT sequin_sf.resume_sync(%s)", (SYNC,))


# --- COPY ----------------------------------------------------------------------------

def test_copy_from_stdin_creates_every_row_once(env):
    emu, _, conn = env
    odd = ["tab\there", "new\nline", "back\\slash", "quote \"double\" 'single'",
           "ünï çødé 中文", "\\N is not null here", "comma, and ; semicolon"]

    def title(i):
        return f"{odd[i % len(odd)]} {i}"

    before = last_entry_id(conn)
    # a COPY that fails on its last row creates nothing
    with pytest.raises(errors.InvalidDatetimeFormat):
        with conn.cursor() as cur:
            with cur.copy("COPY salesforce.contact (first_name, last_name, title, birthdate)"
                          " FROM STDIN") as copy:
                for i in range(1, 1201):
                    copy.write_row((f"x{i}", "CopyStmt", title(i),
                                    "not a date" if i == 1200 else None))
    assert captured_since(conn, before) == 0
    assert query_value(
        conn, "SELECT count(*) FROM salesforce.contact WHERE last_name = 'CopyStmt'") == 0

    # 1,500 rows in one COPY (more than one 1,000-entry batch) ...
    with conn.cursor() as cur:
        with cur.copy("COPY salesforce.contact (first_name, last_name, title) FROM STDIN") as copy:
            for i in range(1, 1501):
                copy.write_row((f"c{i}", "CopyStmt", title(i)))
    # ... and a small one inside a transaction, after an INSERT
    with conn.transaction():
        conn.execute("INSERT INTO salesforce.contact (first_name, last_name, title)"
                     " VALUES ('c0', 'CopyStmt', %s)", (title(0),))
        text = io.StringIO()
        csv.writer(text).writerows((f"c{i}", "CopyStmt", title(i)) for i in range(1501, 1551))
        with conn.cursor() as cur:
            with cur.copy("COPY salesforce.contact (first_name, last_name, title)"
                          " FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(text.getvalue())
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (1551, 0, 0)
    entries = entries_since(conn, before)
    assert actions(entries) == {"insert": 1551}
    assert {e[2] for e in entries} == {"succeeded"}
    assert len({e[3] for e in entries}) == 1551  # one entry per row

    # every row created once (sf_contacts fails on a second record of a row)
    assert_salesforce_and_the_table_hold(
        conn, emu, "CopyStmt", {f"c{i}": (title(i),) for i in range(0, 1551)})
    assert len(sf_records(emu, "SELECT Id FROM Contact WHERE LastName = 'CopyStmt'")) == 1551


# --- MERGE ---------------------------------------------------------------------------

def test_merge_with_insert_update_and_delete_arms_reaches_salesforce(env):
    emu, _, conn = env
    ids = insert_contacts(conn, "MergeStmt", [f"m{g}" for g in range(1, 361)])
    before = last_entry_id(conn)
    cur = conn.execute(
        """
        MERGE INTO salesforce.contact c
        USING (SELECT 'm' || g AS fn,
                      CASE WHEN g <= 120 THEN 'update' WHEN g <= 240 THEN 'delete'
                           ELSE 'keep' END AS kind
                 FROM generate_series(1, 300) g
               UNION ALL
               SELECT 'n' || g, 'insert' FROM generate_series(1, 130) g) s
           ON c.last_name = 'MergeStmt' AND c.first_name = s.fn
         WHEN MATCHED AND s.kind = 'delete' THEN DELETE
         WHEN MATCHED AND s.kind = 'update' THEN UPDATE SET title = 'merged ' || s.fn
         WHEN MATCHED THEN DO NOTHING
         WHEN NOT MATCHED THEN
              INSERT (first_name, last_name, title) VALUES (s.fn, 'MergeStmt', 'new ' || s.fn)
        """
    )
    assert cur.rowcount == 120 + 120 + 130
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (370, 0, 0)
    entries = entries_since(conn, before)
    assert actions(entries) == {"update": 120, "delete": 120, "insert": 130}
    assert {e[2] for e in entries} == {"succeeded"}
    updates = {e[4]: e[5] for e in entries if e[1] == "update"}
    assert updates == {ids[f"m{g}"]: {"title": f"merged m{g}"} for g in range(1, 121)}
    assert {e[4] for e in entries if e[1] == "delete"} == {ids[f"m{g}"] for g in range(121, 241)}

    expected = {}
    expected.update({f"m{g}": (f"merged m{g}",) for g in range(1, 121)})
    expected.update({f"m{g}": ("orig",) for g in range(241, 361)})
    expected.update({f"n{g}": (f"new n{g}",) for g in range(1, 131)})
    assert_salesforce_and_the_table_hold(conn, emu, "MergeStmt", expected)
    assert all(is_deleted_in_salesforce(emu, ids[f"m{g}"]) for g in range(121, 241))


# --- writable CTEs -------------------------------------------------------------------

def test_writable_ctes_touching_the_table_twice(env):
    emu, _, conn = env
    ids = insert_contacts(conn, "CteStmt",
                          [f"c{g}" for g in range(1, 10)] + [f"b{g}" for g in range(1, 301)])
    cols = ("title", "department")
    statements = [
        # an UPDATE in the CTE, an INSERT of rows it returned in the main statement
        """WITH u AS (UPDATE salesforce.contact SET title = 'promoted'
                       WHERE last_name = 'CteStmt' AND first_name IN ('c1', 'c2', 'c3')
                      RETURNING first_name)
           INSERT INTO salesforce.contact (first_name, last_name, title)
           SELECT first_name || '-copy', 'CteStmt', 'copy of ' || first_name FROM u""",
        # an UPDATE in the CTE, a DELETE of other rows in the main statement
        """WITH u AS (UPDATE salesforce.contact SET title = 'kept'
                       WHERE last_name = 'CteStmt' AND first_name IN ('c4', 'c5') RETURNING 1)
           DELETE FROM salesforce.contact
            WHERE last_name = 'CteStmt' AND first_name IN ('c6', 'c7')""",
        # two UPDATEs of the table, both aiming at c8: Postgres updates it once (with one
        # of the two values, which is not said), the other UPDATE skips it
        """WITH u AS (UPDATE salesforce.contact SET title = 'from the cte'
                       WHERE last_name = 'CteStmt' AND first_name = 'c8' RETURNING 1)
           UPDATE salesforce.contact SET title = 'from the main statement'
            WHERE last_name = 'CteStmt' AND first_name IN ('c8', 'c9')""",
        # two INSERTs into the table in one statement
        """WITH i AS (INSERT INTO salesforce.contact (first_name, last_name, title)
                      VALUES ('d1', 'CteStmt', 'first insert') RETURNING first_name)
           INSERT INTO salesforce.contact (first_name, last_name, title)
           SELECT first_name || '-twin', 'CteStmt', 'second insert' FROM i""",
        # DELETE, UPDATE and INSERT of more than 100 rows each, in one statement (batches)
        """WITH d AS (DELETE FROM salesforce.contact
                       WHERE last_name = 'CteStmt' AND first_name IN
                             (SELECT 'b' || g FROM generate_series(1, 150) g) RETURNING 1),
                u AS (UPDATE salesforce.contact SET department = 'bulk'
                       WHERE last_name = 'CteStmt' AND first_name IN
                             (SELECT 'b' || g FROM generate_series(151, 300) g)
                      RETURNING first_name)
           INSERT INTO salesforce.contact (first_name, last_name, title)
           SELECT 'x' || first_name, 'CteStmt', 'bulk insert' FROM u""",
    ]
    with worker_stopped(conn):
        bounds = [last_entry_id(conn)]
        for sql in statements:
            conn.execute(sql)
            bounds.append(last_entry_id(conn))
        # what the statements left, which Salesforce must get
        expected = {f: v for f, *v in query_rows(
            conn, "SELECT first_name, title, department FROM salesforce.contact"
                  " WHERE last_name = 'CteStmt'")}
        expected = {f: tuple(v) for f, v in expected.items()}
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (bounds[-1] - bounds[0], 0, 0)
    entries = entries_since(conn, bounds[0])
    assert {e[2] for e in entries} == {"succeeded"}
    each = [[e for e in entries if lo < e[0] <= hi] for lo, hi in zip(bounds, bounds[1:])]

    assert actions(each[0]) == {"update": 3, "insert": 3}
    assert {e[4] for e in each[0] if e[1] == "update"} == {ids["c1"], ids["c2"], ids["c3"]}
    assert actions(each[1]) == {"update": 2, "delete": 2}
    assert {e[4] for e in each[1] if e[1] == "delete"} == {ids["c6"], ids["c7"]}
    c8 = expected["c8"][0]
    assert c8 in ("from the cte", "from the main statement")
    assert sorted((e[4], e[5]) for e in each[2]) == sorted(
        [(ids["c8"], {"title": c8}), (ids["c9"], {"title": "from the main statement"})])
    assert actions(each[3]) == {"insert": 2}
    assert actions(each[4]) == {"delete": 150, "update": 150, "insert": 150}
    assert {str(e[5]) for e in each[4] if e[1] == "update"} == {"{'department': 'bulk'}"}

    assert expected["c1"] == ("promoted", None) and expected["c1-copy"] == ("copy of c1", None)
    assert expected["c4"] == ("kept", None) and "c6" not in expected
    assert expected["c9"] == ("from the main statement", None)
    assert expected["d1"] == ("first insert", None)
    assert expected["d1-twin"] == ("second insert", None)
    assert "b1" not in expected and expected["b151"] == ("orig", "bulk")
    assert expected["xb151"] == ("bulk insert", None)
    assert len(expected) == 9 - 2 + 3 + 2 + 150 + 150
    assert_salesforce_and_the_table_hold(conn, emu, "CteStmt", expected, cols)
    gone = [ids["c6"], ids["c7"]] + [ids[f"b{g}"] for g in range(1, 151)]
    assert all(is_deleted_in_salesforce(emu, i) for i in gone)


# --- UPDATE ... FROM matching a row twice ---------------------------------------------

def test_update_from_a_join_matching_a_row_twice_sends_the_value_the_row_ended_with(env):
    emu, _, conn = env
    ids = insert_contacts(conn, "JoinStmt", [f"j{g}" for g in range(1, 153)])
    before = last_entry_id(conn)
    with worker_stopped(conn):
        # 150 rows (a batched statement), each matched by two source rows of different
        # titles
        cur = conn.execute(
            """
            UPDATE salesforce.contact c SET title = s.t
              FROM (SELECT 'j' || g AS fn, k || ' ' || g AS t
                      FROM generate_series(1, 150) g, unnest(ARRAY['first', 'second']) k
                     ORDER BY md5(g::text || k)) s
             WHERE c.last_name = 'JoinStmt' AND c.first_name = s.fn
            """
        )
        assert cur.rowcount == 150
        # two rows (log rows, not a batch), one matched three times
        cur = conn.execute(
            """
            UPDATE salesforce.contact c SET title = s.t
              FROM (VALUES ('j151', 'one'), ('j151', 'two'), ('j151', 'three'),
                           ('j152', 'only')) s(fn, t)
             WHERE c.last_name = 'JoinStmt' AND c.first_name = s.fn
            """
        )
        assert cur.rowcount == 2
        final = dict(query_rows(conn, "SELECT first_name, title FROM salesforce.contact"
                                      " WHERE last_name = 'JoinStmt'"))
    for g in range(1, 151):
        assert final[f"j{g}"] in (f"first {g}", f"second {g}")
    assert final["j151"] in ("one", "two", "three") and final["j152"] == "only"
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (152, 0, 0)
    entries = entries_since(conn, before)
    assert actions(entries) == {"update": 152}
    assert len({e[3] for e in entries}) == 152  # one entry per row
    # each entry sent exactly the value its row ended with
    assert {e[4]: e[5] for e in entries} == {ids[f]: {"title": t} for f, t in final.items()}
    assert_salesforce_and_the_table_hold(
        conn, emu, "JoinStmt", {f: (t,) for f, t in final.items()})


# --- INSERT ... ON CONFLICT ---------------------------------------------------------

def test_insert_on_conflict_sends_the_inserts_and_the_updates(env):
    emu, _, conn = env
    ids = insert_contacts(conn, "UpsertStmt", ["u1", "u2", "u3"])
    before = last_entry_id(conn)
    conn.execute(
        "INSERT INTO salesforce.contact AS c (id, first_name, last_name, title)"
        " VALUES (%s, 'u1', 'UpsertStmt', 'upserted 1'), (%s, 'u2', 'UpsertStmt', 'orig'),"
        "        (NULL, 'u4', 'UpsertStmt', 'inserted')"
        " ON CONFLICT (id) DO UPDATE SET title = excluded.title",
        (ids["u1"], ids["u2"]),
    )
    conn.execute(
        "INSERT INTO salesforce.contact (id, first_name, last_name, title)"
        " VALUES (%s, 'u3', 'UpsertStmt', 'ignored') ON CONFLICT (id) DO NOTHING",
        (ids["u3"],),
    )
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (2, 0, 0)
    entries = entries_since(conn, before)
    # u2's conflict set the title it had: no change, no entry
    assert sorted((e[1], e[5].get("title")) for e in entries) == [
        ("insert", "inserted"), ("update", "upserted 1")]
    assert [e[4] for e in entries if e[1] == "update"] == [ids["u1"]]
    assert_salesforce_and_the_table_hold(conn, emu, "UpsertStmt", {
        "u1": ("upserted 1",), "u2": ("orig",), "u3": ("orig",), "u4": ("inserted",)})


# --- foreign key cascades from user tables --------------------------------------------

def test_foreign_key_cascades_from_user_tables(env):
    emu, _, conn = env
    conn.execute("""
        CREATE TABLE app.owner (id int PRIMARY KEY);
        CREATE TABLE app.team (id int PRIMARY KEY);
        CREATE TABLE app.region (code text PRIMARY KEY);
        INSERT INTO app.owner VALUES (1), (2), (3);
        INSERT INTO app.team VALUES (10);
        INSERT INTO app.region VALUES ('Xland');
        ALTER TABLE salesforce.contact
          ADD COLUMN owner_ref int REFERENCES app.owner ON DELETE CASCADE ON UPDATE CASCADE,
          ADD COLUMN team_ref int REFERENCES app.team ON DELETE SET NULL,
          ADD CONSTRAINT contact_region_fk FOREIGN KEY (mailing_country)
              REFERENCES app.region ON UPDATE CASCADE NOT VALID;
    """)
    try:
        conn.execute(
            "INSERT INTO salesforce.contact (first_name, last_name, owner_ref, team_ref,"
            " mailing_country)"
            " SELECT 'f' || g, 'FkStmt', CASE WHEN g <= 3 THEN 1 WHEN g <= 6 THEN 2 ELSE 3 END,"
            "        10, 'Xland' FROM generate_series(1, 156) g")
        assert await_writes(conn)[1:] == (0, 0)
        ids = dict(query_rows(
            conn, "SELECT first_name, id FROM salesforce.contact WHERE last_name = 'FkStmt'"))
        before = last_entry_id(conn)

        # a user column's ON UPDATE CASCADE and ON DELETE SET NULL change no field:
        # nothing is captured
        conn.execute("UPDATE app.owner SET id = 20 WHERE id = 2")
        conn.execute("DELETE FROM app.team WHERE id = 10")
        assert query_value(
            conn, "SELECT count(*) FROM salesforce.contact WHERE last_name = 'FkStmt'"
            " AND (team_ref IS NOT NULL OR owner_ref = 2)") == 0
        assert captured_since(conn, before) == 0

        # ON DELETE CASCADE deletes contacts: 3, then 150 (a batched statement)
        conn.execute("DELETE FROM app.owner WHERE id = 1")
        conn.execute("DELETE FROM app.owner WHERE id = 3")
        # ON UPDATE CASCADE into a field's column: an update of that field
        conn.execute("UPDATE app.region SET code = 'Yland' WHERE code = 'Xland'")
        ok, bad, open_ = await_writes(conn)
        assert (ok, bad, open_) == (156, 0, 0)
        entries = entries_since(conn, before)
        assert actions(entries) == {"delete": 153, "update": 3}
        assert {e[2] for e in entries} == {"succeeded"}
        deleted = {f"f{g}" for g in range(1, 4)} | {f"f{g}" for g in range(7, 157)}
        assert {e[4] for e in entries if e[1] == "delete"} == {ids[f] for f in deleted}
        assert sorted((e[4], e[5]) for e in entries if e[1] == "update") == sorted(
            (ids[f"f{g}"], {"mailing_country": "Yland"}) for g in range(4, 7))

        assert_salesforce_and_the_table_hold(
            conn, emu, "FkStmt", {f"f{g}": ("Yland",) for g in range(4, 7)}, ("mailing_country",))
        assert all(is_deleted_in_salesforce(emu, ids[f]) for f in deleted)
    finally:
        conn.execute("""
            ALTER TABLE salesforce.contact DROP CONSTRAINT contact_region_fk,
              DROP COLUMN owner_ref, DROP COLUMN team_ref;
            DROP TABLE app.owner, app.team, app.region;
        """)


# --- partitions and inheritance ---------------------------------------------------------

def test_a_partition_of_a_synced_table_is_refused(env):
    _, _, conn = env
    with pytest.raises(psycopg.Error) as err:
        conn.execute("CREATE TABLE app.contact_part PARTITION OF salesforce.contact"
                     " FOR VALUES IN (true)")
    assert '"contact" is not partitioned' in str(err.value)
    conn.execute("CREATE TABLE app.loose (LIKE salesforce.contact)")
    try:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("ALTER TABLE salesforce.contact ATTACH PARTITION app.loose DEFAULT")
        # worded "is not partitioned" up to 17, "cannot be performed on relation" from 18
        assert '"contact"' in str(err.value)
    finally:
        conn.execute("DROP TABLE app.loose")


def changed_through_another_table_or_refused(conn, emu, ddl, undo, dml, last_name, expect):
    """Runs `ddl` (which puts the synced table under or over another table); if Postgres
    or sequin_sf refuses it, the refusal must name the table. Otherwise each statement
    of `dml` (changing rows of `last_name` through the other table) must reach
    Salesforce: afterwards Salesforce holds what the table holds, which is `expect`
    ({first_name: title}). Returns whether `ddl` was refused."""
    try:
        conn.execute(ddl)
    except psycopg.Error as err:
        assert "contact" in str(err)
        return True
    try:
        for sql in dml:
            conn.execute(sql)
        ok, bad, open_ = await_writes(conn)
        assert (bad, open_) == (0, 0)
        assert_salesforce_and_the_table_hold(
            conn, emu, last_name, {f: (t,) for f, t in expect.items()})
    finally:
        conn.execute(undo)
    return False


@pytest.mark.extension_only("refused by an event trigger, which the role sequin-sf runs as may not create (README, On a managed Postgres)")
def test_a_synced_table_attached_as_a_partition_is_refused(env):
    emu, _, conn = env
    ids = insert_contacts(conn, "PartStmt", ["p1", "p2"])
    conn.execute("CREATE TABLE app.contact_parted (LIKE salesforce.contact)"
                 " PARTITION BY LIST (is_deleted)")
    try:
        refused = changed_through_another_table_or_refused(
            conn, emu,
            "ALTER TABLE app.contact_parted ATTACH PARTITION salesforce.contact DEFAULT",
            "ALTER TABLE app.contact_parted DETACH PARTITION salesforce.contact",
            ["UPDATE app.contact_parted SET title = 'via the partitioned table'"
             " WHERE last_name = 'PartStmt' AND first_name = 'p1'",
             "DELETE FROM app.contact_parted WHERE last_name = 'PartStmt' AND first_name = 'p2'"],
            "PartStmt", {"p1": "via the partitioned table"})
        # refused by sequin_sf (15, 16) or by Postgres (17+: the identity column)
        assert refused
    finally:
        conn.execute("DROP TABLE app.contact_parted")


@pytest.mark.extension_only("refused by an event trigger, which the role sequin-sf runs as may not create (README, On a managed Postgres)")
def test_a_synced_table_made_an_inheritance_child_is_refused(env):
    emu, _, conn = env
    ids = insert_contacts(conn, "InhParentStmt", ["h1", "h2"])
    conn.execute("CREATE TABLE app.contact_base (last_name text, first_name text, title text)")
    try:
        refused = changed_through_another_table_or_refused(
            conn, emu,
            "ALTER TABLE salesforce.contact INHERIT app.contact_base",
            "ALTER TABLE salesforce.contact NO INHERIT app.contact_base",
            ["UPDATE app.contact_base SET title = 'via the parent'"
             " WHERE last_name = 'InhParentStmt' AND first_name = 'h1'",
             "DELETE FROM app.contact_base"
             " WHERE last_name = 'InhParentStmt' AND first_name = 'h2'"],
            "InhParentStmt", {"h1": "via the parent"})
        assert refused
    finally:
        conn.execute("DROP TABLE app.contact_base")


@pytest.mark.extension_only("refused by an event trigger, which the role sequin-sf runs as may not create (README, On a managed Postgres)")
def test_an_inheritance_child_of_a_synced_table_is_refused(env):
    emu, _, conn = env
    assert changed_through_another_table_or_refused(
        conn, emu,
        "CREATE TABLE app.contact_child (note text) INHERITS (salesforce.contact)",
        "DROP TABLE app.contact_child",
        ["INSERT INTO app.contact_child (_row_id, first_name, last_name, title)"
         " VALUES (nextval(pg_get_serial_sequence('salesforce.contact', '_row_id')),"
         "         'i1', 'InhChildStmt', 'in the child')"],
        "InhChildStmt", {"i1": "in the child"})


# --- generated columns ------------------------------------------------------------------

def test_a_generated_column_added_to_a_synced_table_is_never_sent(env):
    emu, _, conn = env
    conn.execute("""
        ALTER TABLE salesforce.contact
          ADD COLUMN title_shout text GENERATED ALWAYS AS (upper(title) || '!') STORED,
          ADD COLUMN score int,
          ADD COLUMN score_twice int GENERATED ALWAYS AS (score * 2) STORED
    """)
    try:
        before = last_entry_id(conn)
        conn.execute(
            "INSERT INTO salesforce.contact (first_name, last_name, title, score)"
            " SELECT 'g' || g, 'GenStmt', 'ceo', g FROM generate_series(1, 150) g")
        ok, bad, open_ = await_writes(conn)
        assert (ok, bad, open_) == (150, 0, 0)
        # the sent column a generated one depends on: one row, then all (batched)
        conn.execute("UPDATE salesforce.contact SET title = 'cfo'"
                     " WHERE last_name = 'GenStmt' AND first_name = 'g1'")
        conn.execute("UPDATE salesforce.contact SET title = title || ' and coo'"
                     " WHERE last_name = 'GenStmt'")
        mid = last_entry_id(conn)
        # changing only a user column (and the generated one after it) is no change
        conn.execute("UPDATE salesforce.contact SET score = score + 1 WHERE last_name = 'GenStmt'")
        assert captured_since(conn, mid) == 0
        ok, bad, open_ = await_writes(conn)
        assert (ok, bad, open_) == (151, 0, 0)
        assert query_value(
            conn, "SELECT title_shout FROM salesforce.contact"
            " WHERE last_name = 'GenStmt' AND first_name = 'g1'") == "CFO AND COO!"

        entries = entries_since(conn, before)
        assert actions(entries) == {"insert": 150, "update": 151}
        assert {e[2] for e in entries} == {"succeeded"}
        sent = set().union(*(e[5].keys() for e in entries))
        assert sent == {"first_name", "last_name", "title"}
        assert [e[5] for e in entries if e[1] == "update"][0] == {"title": "cfo"}
        expected = {f"g{g}": ("ceo and coo",) for g in range(2, 151)}
        expected["g1"] = ("cfo and coo",)
        assert_salesforce_and_the_table_hold(conn, emu, "GenStmt", expected)
    finally:
        conn.execute("ALTER TABLE salesforce.contact DROP COLUMN title_shout,"
                     " DROP COLUMN score_twice, DROP COLUMN score")


# --- ALTER TABLE while statements are prepared -------------------------------------------

def test_alter_table_from_another_session_while_a_prepared_statement_is_reused(env):
    emu, cluster, conn = env
    ids = insert_contacts(conn, "PrepStmt", [f"p{g}" for g in range(1, 121)])
    target = query_value(conn, "SELECT _row_id FROM salesforce.contact"
                               " WHERE last_name = 'PrepStmt' AND first_name = 'p1'")
    to_delete = iter(ids[f"p{g}"] for g in range(100, 121))
    update_one = "UPDATE salesforce.contact SET title = %s WHERE _row_id = %s"
    update_all = "UPDATE salesforce.contact SET department = %s WHERE last_name = %s"
    insert = "INSERT INTO salesforce.contact (first_name, last_name, title) VALUES (%s, %s, %s)"
    delete = "DELETE FROM salesforce.contact WHERE id = %s"
    changed = 0
    n = 0
    inserted = []

    def run(times, bulk_times):
        nonlocal changed, n
        for _ in range(times):
            n += 1
            inserted.append(n)
            for sql, args in ((update_one, (f"title {n}", target)),
                              (insert, (f"new{n}", "PrepStmt", f"inserted {n}"))):
                changed += conn.execute(sql, args, prepare=True).rowcount
        for _ in range(bulk_times):
            n += 1
            changed += conn.execute(update_all, (f"dept {n}", "PrepStmt"), prepare=True).rowcount
        changed += conn.execute(delete, (next(to_delete),), prepare=True).rowcount

    before = last_entry_id(conn)
    run(7, 2)
    # the one-row statements run on a generic plan by now
    plans = dict(query_rows(conn, "SELECT statement, generic_plans FROM pg_prepared_statements"))
    assert plans[update_one.replace("%s", "$1", 1).replace("%s", "$2")] > 0
    with cluster.connect() as other:
        # a column with a default: rows written before it lack it on disk
        other.execute("ALTER TABLE salesforce.contact ADD COLUMN prep_note text DEFAULT 'note'")
        run(3, 2)
        other.execute("ALTER TABLE salesforce.contact ADD COLUMN prep_flag boolean,"
                      " DROP COLUMN prep_note")
        run(3, 2)
        other.execute("ALTER TABLE salesforce.contact DROP COLUMN prep_flag")
        run(3, 1)
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (changed, 0, 0)
    entries = entries_since(conn, before)
    assert len(entries) == changed and {e[2] for e in entries} == {"succeeded"}
    assert actions(entries)["insert"] == 16 and actions(entries)["delete"] == 4
    assert {k for e in entries if e[5] for k in e[5]} <= {
        "title", "department", "first_name", "last_name"}
    # the last statement was an update of all rows, the one before it p1's title
    expected = {f"p{g}": ("orig", f"dept {n}") for g in range(1, 121) if not 100 <= g <= 103}
    expected["p1"] = (f"title {n - 1}", f"dept {n}")
    expected.update({f"new{k}": (f"inserted {k}", f"dept {n}") for k in inserted})
    assert len(expected) == 120 + 16 - 4
    assert_salesforce_and_the_table_hold(conn, emu, "PrepStmt", expected, ("title", "department"))


def test_alter_table_between_batched_statements_of_one_transaction(env):
    """A transaction's entries beyond its first 100 gather in memory with the table's
    column description; the table changes shape between its statements."""
    emu, _, conn = env
    ids = insert_contacts(conn, "AlterTxStmt", [f"a{g}" for g in range(1, 31)])
    rows = [ids[f"a{g}"] for g in range(1, 31)]
    conn.execute("ALTER TABLE salesforce.contact ADD COLUMN tx_gone text DEFAULT 'gone'")
    before = last_entry_id(conn)
    try:
        with conn.transaction():
            for i in range(120):
                conn.execute("UPDATE salesforce.contact SET title = %s WHERE id = %s",
                             (f"t{i}", rows[i % 30]), prepare=True)
            conn.execute("ALTER TABLE salesforce.contact ADD COLUMN tx_note text DEFAULT 'zz'")
            for i in range(120, 160):
                conn.execute("UPDATE salesforce.contact SET title = %s WHERE id = %s",
                             (f"t{i}", rows[i % 30]), prepare=True)
            conn.execute("UPDATE salesforce.contact SET department = 'bulk'"
                         " WHERE last_name = 'AlterTxStmt'")
            conn.execute("ALTER TABLE salesforce.contact DROP COLUMN tx_gone")
            for i in range(160, 200):
                conn.execute("UPDATE salesforce.contact SET title = %s WHERE id = %s",
                             (f"t{i}", rows[i % 30]), prepare=True)
        ok, bad, open_ = await_writes(conn)
        assert (ok, bad, open_) == (230, 0, 0)
        entries = entries_since(conn, before)
        assert actions(entries) == {"update": 230}
        assert {e[2] for e in entries} == {"succeeded"}
        titles = [e[5]["title"] for e in entries if "title" in e[5]]
        assert titles == [f"t{i}" for i in range(200)]  # in order
        previous = query_rows(
            conn, "SELECT previous ->> 'title', previous ->> 'tx_note', previous ? 'tx_gone'"
            " FROM salesforce._sync_write_log WHERE id > %s ORDER BY id", (before,))
        assert previous[30] == ("t0", None, True)
        assert previous[-1] == ("t169", "zz", False)
        expected = {f"a{k + 1}": (f"t{max(i for i in range(200) if i % 30 == k)}", "bulk")
                    for k in range(30)}
        assert expected["a1"] == ("t180", "bulk")
        assert_salesforce_and_the_table_hold(
            conn, emu, "AlterTxStmt", expected, ("title", "department"))
    finally:
        conn.execute("ALTER TABLE salesforce.contact DROP COLUMN IF EXISTS tx_note,"
                     " DROP COLUMN IF EXISTS tx_gone")


# --- very wide text ---------------------------------------------------------------------

ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éßø中文\n\t\"'\\,;"


def random_text(rng, n):
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def test_the_longest_description_salesforce_takes_and_one_longer(env):
    emu, _, conn = env
    rng = random.Random(9)
    longest = random_text(rng, 32000)  # textarea(32000): characters, not bytes
    too_long = random_text(rng, 32001)
    before = last_entry_id(conn)
    conn.execute(
        "INSERT INTO salesforce.contact (first_name, last_name, description)"
        " VALUES ('w-max', 'WideStmt', %s), ('w-over', 'WideStmt', %s),"
        "        ('w-upd', 'WideStmt', 'short')", (longest, too_long))
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (2, 1, 0)
    failed = query_rows(
        conn, "SELECT l.api_result, l.api_message, r.id, r._write_state, r.description"
        " FROM salesforce._sync_write_log l JOIN salesforce.contact r ON r._row_id = l.row_id"
        " WHERE l.id > %s AND l.state = 'failed'", (before,))
    assert len(failed) == 1
    result, message, rid, write_state, description = failed[0]
    assert result == 400 and message.startswith("STRING_TOO_LONG")
    assert (rid, write_state, description) == (None, "failed", too_long)
    ids = dict(query_rows(conn, "SELECT first_name, id FROM salesforce.contact"
                                " WHERE last_name = 'WideStmt' AND id IS NOT NULL"))
    assert emu.control("GET", f"records/Contact/{ids['w-max']}")["Description"] == longest

    # 100,000 characters: refused by Salesforce, and the update is undone in the table
    before = last_entry_id(conn)
    conn.execute("UPDATE salesforce.contact SET description = %s WHERE id = %s",
                 (random_text(rng, 100000), ids["w-upd"]))
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (0, 1, 0)
    [entry] = entries_since(conn, before)
    assert entry[1:3] == ("update", "failed") and entry[6].startswith("STRING_TOO_LONG")
    assert emu.control("GET", f"records/Contact/{ids['w-upd']}")["Description"] == "short"
    wait_for(lambda: query_value(
        conn, "SELECT description FROM salesforce.contact WHERE id = %s", (ids["w-upd"],)
    ) == "short", timeout=60, what="the refused update to be undone")


@pytest.mark.extension_only("the C capture's write batches: the PL/pgSQL capture logs every row")
def test_one_update_of_200_rows_of_the_longest_text(env):
    """A batched statement keeps each row before as a tuple until the worker unpacks it;
    the rows' old text is out of line, and VACUUM may remove it before the unpacking."""
    emu, _, conn = env
    rng = random.Random(11)
    names = [f"x{g}" for g in range(1, 201)]
    old = {n: random_text(rng, 32000) for n in names}
    new = {n: random_text(rng, 32000) for n in names}
    conn.execute(
        "INSERT INTO salesforce.contact (first_name, last_name, description)"
        " SELECT n, 'WideBulkStmt', d FROM unnest(%s::text[], %s::text[]) s(n, d)",
        (names, [old[n] for n in names]))
    assert await_writes(conn) == (200, 0, 0)
    ids = dict(query_rows(conn, "SELECT first_name, id FROM salesforce.contact"
                                " WHERE last_name = 'WideBulkStmt'"))
    before = last_entry_id(conn)
    with worker_stopped(conn):
        cur = conn.execute(
            "UPDATE salesforce.contact c SET description = s.d"
            "  FROM unnest(%s::text[], %s::text[]) s(n, d)"
            " WHERE c.last_name = 'WideBulkStmt' AND c.first_name = s.n",
            (names, [new[n] for n in names]))
        assert cur.rowcount == 200
        # kept in a batch until the worker unpacks it, after the VACUUM
        assert query_value(conn, "SELECT sum(cardinality(ids)) FROM salesforce._sync_write_batch"
                                 " WHERE ids[1] > %s", (before,)) == 200
        conn.execute("VACUUM salesforce.contact")
    assert await_writes(conn) == (200, 0, 0)
    entries = query_rows(
        conn, "SELECT api_id, state, \"values\" ->> 'description', previous ->> 'description'"
        " FROM salesforce._sync_write_log WHERE id > %s ORDER BY id", (before,))
    by_id = {ids[n]: n for n in names}
    assert len(entries) == 200
    for api_id, state, sent, previous in entries:
        assert state == "succeeded"
        assert sent == new[by_id[api_id]]
        assert previous == old[by_id[api_id]]
    assert_salesforce_and_the_table_hold(
        conn, emu, "WideBulkStmt", {n: (new[n],) for n in names}, ("description",))


# --- a refusal inside a large statement ---------------------------------------------------

def test_a_refusal_inside_a_large_statement_refuses_all_of_it(env):
    emu, _, conn = env
    ids = insert_contacts(conn, "RefuseStmt", [f"r{g}" for g in range(1, 301)])
    sf_before = sf_contacts(emu, "RefuseStmt", ("title", "department"))
    assert sf_before == {f"r{g}": ("orig", None) for g in range(1, 301)}
    before = last_entry_id(conn)
    with pytest.raises(errors.GeneratedAlways) as err:
        conn.execute(
            "UPDATE salesforce.contact SET title = 'bulk',"
            "       name = CASE WHEN first_name = 'r150' THEN 'Renamed' ELSE name END"
            " WHERE last_name = 'RefuseStmt'")
    assert 'column "name" of salesforce.contact cannot be written' in str(err.value)
    assert "Salesforce does not allow updates of field Name" in str(err.value)
    with pytest.raises(errors.GeneratedAlways) as err:
        conn.execute(
            "UPDATE salesforce.contact SET title = 'bulk',"
            "       id = CASE WHEN first_name = 'r299' THEN 'bogus' ELSE id END"
            " WHERE last_name = 'RefuseStmt'")
    assert 'column "id" of salesforce.contact cannot be written' in str(err.value)
    # a COPY of 300 new rows, one setting a column Salesforce sets itself
    with pytest.raises(errors.GeneratedAlways) as err:
        with conn.cursor() as cur:
            with cur.copy("COPY salesforce.contact (first_name, last_name, name) FROM STDIN") as cp:
                for g in range(1, 301):
                    cp.write_row((f"k{g}", "RefuseStmt", "Not mine" if g == 200 else None))
    assert 'column "name" of salesforce.contact cannot be written' in str(err.value)
    assert captured_since(conn, before) == 0

    # inside a transaction: the refused statement's savepoint is rolled back, the
    # statements around it (one batched) are sent
    with conn.transaction():
        conn.execute("UPDATE salesforce.contact SET department = 'before'"
                     " WHERE last_name = 'RefuseStmt' AND first_name IN"
                     " (SELECT 'r' || g FROM generate_series(1, 150) g)")
        with pytest.raises(errors.GeneratedAlways):
            with conn.transaction():
                conn.execute(
                    "UPDATE salesforce.contact SET title = 'bulk',"
                    "       name = CASE WHEN first_name = 'r150' THEN 'Renamed' ELSE name END"
                    " WHERE last_name = 'RefuseStmt'")
        conn.execute("UPDATE salesforce.contact SET department = 'after'"
                     " WHERE last_name = 'RefuseStmt' AND first_name = 'r300'")
    ok, bad, open_ = await_writes(conn)
    assert (ok, bad, open_) == (151, 0, 0)
    entries = entries_since(conn, before)
    assert sorted(e[4] for e in entries) == sorted(
        [ids[f"r{g}"] for g in range(1, 151)] + [ids["r300"]])
    assert {str(e[5]) for e in entries} == {"{'department': 'before'}", "{'department': 'after'}"}
    expected = {f"r{g}": ("orig", "before" if g <= 150 else None) for g in range(1, 301)}
    expected["r300"] = ("orig", "after")
    assert_salesforce_and_the_table_hold(
        conn, emu, "RefuseStmt", expected, ("title", "department"))
    assert query_value(
        conn, "SELECT count(*) FROM salesforce.contact WHERE last_name = 'RefuseStmt'"
        " AND (name = 'Renamed' OR title = 'bulk' OR id = 'bogus')") == 0


# --- statements run by a user's row trigger ----------------------------------------------

@pytest.fixture
def row_trigger(env):
    """Creates a user's AFTER ROW trigger on salesforce.contact (its function's body and
    the trigger's timing clause given) and drops it afterwards."""
    _, _, conn = env
    made = []

    def make(name, body, timing):
        conn.execute(f"CREATE FUNCTION app.{name}() RETURNS trigger LANGUAGE plpgsql"
                     f" AS $$BEGIN {body}; RETURN NULL; END$$")
        conn.execute(f"CREATE TRIGGER {name} {timing} EXECUTE FUNCTION app.{name}()")
        made.append(name)

    yield make
    for name in made:
        conn.execute(f"DROP TRIGGER {name} ON salesforce.contact")
        conn.execute(f"DROP FUNCTION app.{name}()")


def test_a_row_changed_again_by_a_users_after_update_trigger_ends_in_salesforce_as_in_the_table(
        env, row_trigger):
    emu, _, conn = env
    insert_contacts(conn, "NestStmt", ["u1"], title="start")
    row_trigger(
        "nest_upper_title",
        "UPDATE salesforce.contact SET title = upper(NEW.title) WHERE _row_id = NEW._row_id",
        "AFTER UPDATE OF title ON salesforce.contact FOR EACH ROW"
        " WHEN (NEW.last_name = 'NestStmt' AND NEW.title <> upper(NEW.title))")
    with worker_stopped(conn):
        conn.execute("UPDATE salesforce.contact SET title = 'lower case'"
                     " WHERE last_name = 'NestStmt' AND first_name = 'u1'")
        assert query_value(conn, "SELECT title FROM salesforce.contact WHERE last_name ="
                                 " 'NestStmt' AND first_name = 'u1'") == "LOWER CASE"
    ok, bad, open_ = await_writes(conn)
    assert (bad, open_) == (0, 0)
    assert sf_contacts(emu, "NestStmt") == {"u1": ("LOWER CASE",)}


def test_a_row_changed_by_a_users_after_insert_trigger_is_created_with_no_failure(
        env, row_trigger):
    emu, _, conn = env
    row_trigger(
        "nest_stamp",
        "UPDATE salesforce.contact SET department = 'stamped' WHERE _row_id = NEW._row_id",
        "AFTER INSERT ON salesforce.contact FOR EACH ROW WHEN (NEW.last_name = 'NestInsStmt')")
    before = last_entry_id(conn)
    conn.execute("INSERT INTO salesforce.contact (first_name, last_name)"
                 " VALUES ('s1', 'NestInsStmt')")
    ok, bad, open_ = await_writes(conn)
    assert sf_contacts(emu, "NestInsStmt", ("department",)) == {"s1": ("stamped",)}
    assert {e[2] for e in entries_since(conn, before)} == {"succeeded"}
    assert (bad, open_) == (0, 0)


def test_a_row_changed_again_by_a_users_after_statement_trigger_ends_as_in_the_table(
        env, row_trigger):
    """A user's AFTER STATEMENT trigger whose name sorts before capture's fires before
    it: its statement is captured first and must still be logged after the statement
    that fired it. (A BEFORE STATEMENT trigger cannot change a row its statement then
    changes: Postgres refuses the statement, 'tuple to be updated was already modified
    by an operation triggered by the current command'.)"""
    emu, _, conn = env
    insert_contacts(conn, "NestAfter", ["a1", "a2"], title="start")
    row_trigger(
        "aaa_suffix_title",
        "UPDATE salesforce.contact SET title = title || ' after'"
        " WHERE last_name = 'NestAfter'",
        "AFTER UPDATE ON salesforce.contact FOR EACH STATEMENT"
        " WHEN (pg_trigger_depth() < 1)")
    with worker_stopped(conn):
        conn.execute("UPDATE salesforce.contact SET title = 'outer ' || first_name"
                     " WHERE last_name = 'NestAfter'")
    ok, bad, open_ = await_writes(conn)
    assert (bad, open_) == (0, 0)
    assert sf_contacts(emu, "NestAfter") == {
        "a1": ("outer a1 after",), "a2": ("outer a2 after",)}


def test_a_change_a_users_row_trigger_rolls_back_is_never_sent(env, row_trigger):
    """Entries held for the statement around them go with a subtransaction rolled back
    (a PL/pgSQL exception block); those of one that completed are sent, after the
    statement's own."""
    emu, _, conn = env
    insert_contacts(conn, "NestRollback", ["r1"], title="start")
    row_trigger(
        "nest_try",
        "BEGIN UPDATE salesforce.contact SET department = 'undone' WHERE _row_id = NEW._row_id;"
        " RAISE EXCEPTION 'undo'; EXCEPTION WHEN raise_exception THEN NULL; END;"
        " BEGIN UPDATE salesforce.contact SET title = NEW.title || ' kept'"
        " WHERE _row_id = NEW._row_id; END",
        "AFTER UPDATE ON salesforce.contact FOR EACH ROW"
        " WHEN (NEW.last_name = 'NestRollback' AND pg_trigger_depth() < 1)")
    before = last_entry_id(conn)
    with worker_stopped(conn):
        conn.execute("UPDATE salesforce.contact SET title = 'outer'"
                     " WHERE last_name = 'NestRollback'")
        entries = entries_since(conn, before)
        assert [(e[1], e[5]) for e in entries] == [
            ("update", {"title": "outer"}), ("update", {"title": "outer kept"})]
    ok, bad, open_ = await_writes(conn)
    assert (bad, open_) == (0, 0)
    assert sf_contacts(emu, "NestRollback", ("title", "department")) == {
        "r1": ("outer kept", None)}

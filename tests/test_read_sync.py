"""End to end: the read path (Salesforce -> Postgres) with a real cluster, the real
background worker and the emulator as Salesforce."""

import datetime
import decimal
import json
import os
import signal
import threading

import psycopg
import pytest

from harness import (
    SIDECAR_MODE,
    create_emulator_credential,
    query_rows,
    query_value,
    sf_records,
    wait_backfilled,
    wait_for,
    wait_settled,
    worker_pid,
)

OBJECTS = {
    "Account": ["Id", "Name", "AnnualRevenue", "NumberOfEmployees", "BillingCity", "SystemModstamp"],
    "Contact": ["Id", "FirstName", "LastName", "Email", "AccountId", "Birthdate", "SystemModstamp"],
    "Opportunity": ["Id", "Name", "Amount", "StageName", "CloseDate", "AccountId", "SystemModstamp"],
}


def norm(v):
    """One comparable form for a value read from Salesforce JSON or from Postgres."""
    if v is None:
        return None
    if isinstance(v, dict):
        return tuple(sorted((k, norm(x)) for k, x in v.items()))
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        return round(float(v), 6)
    if isinstance(v, datetime.datetime):
        return v.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, str) and len(v) >= 23 and v[10] == "T" and v[4] == "-":
        t = datetime.datetime.strptime(v[:23] + v[23:].replace(":", ""), "%Y-%m-%dT%H:%M:%S.%f%z")
        return t.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return v


def sf_snapshot(emulator, obj, fields):
    recs = sf_records(emulator, f"SELECT {', '.join(fields)} FROM {obj}")
    return {r["Id"]: tuple(norm(r[f]) for f in fields) for r in recs}


def pg_snapshot(db, sync, obj, fields):
    cols = query_rows(
        db,
        "SELECT field_name, column_name, schema_name, table_name FROM sequin_sf.columns"
        " WHERE sync_name = %s AND collection = %s",
        (sync, obj),
    )
    by_field = {f: (c, s, t) for f, c, s, t in cols}
    schema, table = by_field["Id"][1], by_field["Id"][2]
    sel = ", ".join(psycopg.sql.Identifier(by_field[f][0]).as_string(db) for f in fields)
    rows = query_rows(db, f'SELECT {sel} FROM "{schema}"."{table}"')
    return {r[0]: tuple(norm(v) for v in r) for r in rows}


def start_sync(db, emulator, collections, sync="emu", schema="salesforce", rate=100000):
    """A sync with a generous budget (100,000 requests/day) so polls come often and the
    suite stays quick."""
    create_emulator_credential(db, emulator)
    db.execute(
        "SELECT sequin_sf.create_sync(%s, credential => 'emu', collections => %s, schema_name => %s,"
        " rate_limit_requests => %s)",
        (sync, collections, schema, rate),
    )


def test_read_backfill_matches_emulator(emulator, db):
    start_sync(db, emulator, list(OBJECTS))
    wait_backfilled(db, "emu")
    for obj, fields in OBJECTS.items():
        want = sf_snapshot(emulator, obj, fields)
        got = pg_snapshot(db, "emu", obj, fields)
        assert len(got) == len(want) > 0, obj
        assert got == want, obj
    status = query_rows(
        db, "SELECT collection, rows_done, rows_total, api_requests_24h, last_error"
        " FROM sequin_sf.sync_status ORDER BY collection"
    )
    counts = emulator.stats()["records"]
    for coll, done, total, used, err in status:
        assert done == total == counts[coll]
        assert err is None
        assert used > 0
    # surrogate key, nullable unique Id, reserved write-state column, stamp index
    cols = dict(query_rows(
        db, "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'salesforce' AND table_name = 'contact'"))
    assert cols["_row_id"] == "bigint" and cols["id"] == "text"
    assert cols["_write_state"] == "text" and cols["system_modstamp"].startswith("timestamp")
    assert cols["birthdate"] == "date" and cols["mailing_address"] == "jsonb"
    assert query_value(
        db, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'salesforce'"
        " AND tablename = 'contact' AND indexdef LIKE '%system_modstamp%'") == 1


def events_for(db, upstream_id):
    return query_rows(
        db, "SELECT event, data, previous_data FROM salesforce._sync_events"
        " WHERE upstream_id = %s ORDER BY seq", (upstream_id,))


def test_read_changes_deletes_undeletes_purges_reach_tables_and_events(emulator, db):
    start_sync(db, emulator, ["Contact", "Account"])
    wait_backfilled(db, "emu")
    db.execute("SELECT sequin_sf.alter_sync('emu', deleted_interval => '1 second')")
    listener = psycopg.connect(db.info.dsn, autocommit=True)
    listener.execute("LISTEN sequin_sf_emu")

    new_id = emulator.control("POST", "records/Contact", [{"LastName": "Newman", "Email": "n@x.test"}])["ids"][0]
    wait_for(lambda: query_value(db, "SELECT last_name FROM salesforce.contact WHERE id = %s", (new_id,)) == "Newman",
             what="created contact")

    emulator.control("PATCH", f"records/Contact/{new_id}", {"Title": "CTO", "Email": "cto@x.test"})
    wait_for(lambda: query_value(db, "SELECT title FROM salesforce.contact WHERE id = %s", (new_id,)) == "CTO",
             what="updated contact")

    emulator.control("DELETE", f"records/Contact/{new_id}")
    wait_for(lambda: query_value(db, "SELECT count(*) FROM salesforce.contact WHERE id = %s", (new_id,)) == 0,
             what="soft delete")

    emulator.control("POST", f"records/Contact/{new_id}/undelete")
    wait_for(lambda: query_value(db, "SELECT count(*) FROM salesforce.contact WHERE id = %s", (new_id,)) == 1,
             what="undelete")

    emulator.control("DELETE", f"records/Contact/{new_id}?purge=true")
    wait_for(lambda: query_value(db, "SELECT count(*) FROM salesforce.contact WHERE id = %s", (new_id,)) == 0,
             what="purge (hard delete via /deleted)")

    evs = events_for(db, new_id)
    assert [e[0] for e in evs] == ["inserted", "updated", "deleted", "inserted", "deleted"]
    assert evs[0][1]["LastName"] == "Newman" and evs[0][2] is None
    # previous_data: prior values of the changed fields only (plus the bumped stamps)
    prev = evs[1][2]
    assert prev["Email"] == "n@x.test" and prev["Title"] is None
    assert "LastName" not in prev and "FirstName" not in prev
    assert evs[1][1]["Title"] == "CTO"
    assert query_value(db, "SELECT collection_id FROM salesforce._sync_events WHERE upstream_id = %s LIMIT 1",
                       (new_id,)) == "salesforce:contact"

    # a purge of an already soft-deleted record and a purge of a live one both leave
    # the table, each with exactly one deleted event
    victim = query_value(db, "SELECT id FROM salesforce.account ORDER BY id LIMIT 1")
    emulator.control("DELETE", f"records/Account/{victim}?purge=true")
    wait_for(lambda: query_value(db, "SELECT count(*) FROM salesforce.account WHERE id = %s", (victim,)) == 0,
             what="purged account")
    assert [e[0] for e in events_for(db, victim)] == ["deleted"]

    # consumers can LISTEN on the sync's channel
    notes = list(listener.notifies(timeout=5, stop_after=1))
    assert notes and json.loads(notes[0].payload)["events"] >= 1
    listener.close()
    # the event stream is published for logical replication
    assert query_value(db, "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'sequin_sf_emu'"
                           " AND tablename = '_sync_events'") == 1
    state = query_rows(db, "SELECT state, last_poll_at IS NOT NULL, lag IS NOT NULL FROM sequin_sf.sync_status")
    assert all(s == ("live", True, True) for s in state)

    # retention: events older than event_retention are pruned
    db.execute("SELECT sequin_sf.alter_sync('emu', event_retention => '2 seconds')")
    wait_for(lambda: query_value(db, "SELECT count(*) FROM salesforce._sync_events") == 0,
             what="old events pruned")


def test_read_new_custom_field_becomes_column(emulator, db):
    start_sync(db, emulator, ["Contact"])
    wait_backfilled(db, "emu")
    db.execute("SELECT sequin_sf.alter_sync('emu', describe_interval => '1 second')")
    emulator.control("POST", "schema/Contact/fields", {"name": "Loyalty_Tier__c", "type": "string", "length": 40})
    wait_for(lambda: query_value(
        db, "SELECT column_name FROM sequin_sf.columns WHERE collection = 'Contact'"
        " AND field_name = 'Loyalty_Tier__c'") == "loyalty_tier__c", timeout=180, what="new column")
    some = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    emulator.control("PATCH", f"records/Contact/{some}", {"Loyalty_Tier__c": "Gold"})
    wait_for(lambda: query_value(db, "SELECT loyalty_tier__c FROM salesforce.contact WHERE id = %s", (some,)) == "Gold",
             what="value of the new field")
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None


def test_read_a_field_hidden_by_field_level_security_does_not_stop_the_sync(emulator, db):
    """An admin removes the integration user's access to a field: queries naming it fail
    with INVALID_FIELD until the describe says it is gone; then the column stops being
    filled (its values stay) and the other fields keep syncing."""
    start_sync(db, emulator, ["Contact"])
    wait_backfilled(db, "emu")
    db.execute("SELECT sequin_sf.alter_sync('emu', describe_interval => '1 second')")
    emulator.control("PATCH", "schema/Contact/fields/Languages__c", {"hidden": True})
    cid = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    emulator.control("PATCH", f"records/Contact/{cid}", {"Title": "after hiding"})
    wait_for(lambda: query_value(db, "SELECT title FROM salesforce.contact WHERE id = %s", (cid,))
             == "after hiding", timeout=180, what="a change after the field was hidden")
    assert query_value(
        db, "SELECT active FROM sequin_sf.columns WHERE collection = 'Contact'"
        " AND field_name = 'Languages__c'") is False
    wait_for(lambda: query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None,
             timeout=120, what="the error to clear")
    # access given back: the same column is filled again. (A record changed in the
    # second before the describe sees the field back was seen to keep the column empty
    # until its next change: it is polled without the field.)
    emulator.control("PATCH", "schema/Contact/fields/Languages__c", {"hidden": False})
    wait_for(lambda: query_value(
        db, "SELECT active FROM sequin_sf.columns WHERE collection = 'Contact'"
        " AND field_name = 'Languages__c'"), timeout=120, what="the column active again")
    emulator.control("PATCH", f"records/Contact/{cid}", {"Languages__c": "Esperanto"})
    wait_for(lambda: query_value(db, "SELECT languages__c FROM salesforce.contact WHERE id = %s",
                                 (cid,)) == "Esperanto", timeout=180, what="the field back")
    assert query_value(
        db, "SELECT count(*) FROM sequin_sf.columns WHERE collection = 'Contact'"
        " AND field_name = 'Languages__c' AND active") == 1


def test_read_columns_follow_field_type_changes_without_losing_values(emulator, db):
    """Custom fields change type in Salesforce. Where every value converts, the column
    converts (int -> double: integer -> numeric). Where the column holds the new values
    as they come (text for a field now numeric), it stays and says how to convert it.
    Where it holds neither (numeric for a field now a checkbox, or a date column a
    user's view pins), it keeps its values, is no longer filled, and says what to do;
    once the operator converts it, the sync fills it again. The sync never stops."""
    for name, ftype in [("Rank__c", "int"), ("Score__c", "double"), ("Since__c", "date")]:
        emulator.control("POST", "schema/Contact/fields", {"name": name, "type": ftype, "precision": 18})
    cid = sf_records(emulator, "SELECT Id FROM Contact ORDER BY Id LIMIT 1")[0]["Id"]
    emulator.control("PATCH", f"records/Contact/{cid}", {
        "Rank__c": 3, "Score__c": 1.5, "Since__c": "2020-01-02", "Languages__c": "English"})
    start_sync(db, emulator, ["Contact"])
    wait_backfilled(db, "emu")
    assert query_rows(db, "SELECT rank__c, score__c, since__c, languages__c FROM salesforce.contact"
                          " WHERE id = %s", (cid,)) == [(3, 1.5, datetime.date(2020, 1, 2), "English")]
    db.execute("CREATE VIEW public.since_view AS SELECT id, since__c FROM salesforce.contact")
    db.execute("SELECT sequin_sf.alter_sync('emu', describe_interval => '1 second')")
    for name, ftype in [("Rank__c", "double"), ("Languages__c", "double"),
                        ("Score__c", "boolean"), ("Since__c", "datetime")]:
        emulator.control("PATCH", f"schema/Contact/fields/{name}", {"type": ftype, "precision": 18, "scale": 2})

    def column(field):
        return query_rows(db, "SELECT sf_type, pg_type, active, note FROM sequin_sf.columns"
                              " WHERE collection = 'Contact' AND field_name = %s", (field,))[0]

    wait_for(lambda: column("Since__c")[0] == "datetime", timeout=180, what="the changed describe")
    rank, langs, score, since = (column(f) for f in ["Rank__c", "Languages__c", "Score__c", "Since__c"])
    assert rank[:3] == ("double", "numeric", True) and rank[3] is None
    assert langs[:3] == ("double", "text", True) and "ALTER TABLE salesforce.contact" in langs[3]
    assert score[:3] == ("boolean", "numeric", False) and "no longer filled" in score[3]
    assert since[:3] == ("datetime", "date", False) and "since_view" in since[3]
    assert query_value(db, "SELECT format_type(atttypid, NULL) FROM pg_attribute"
                           " WHERE attrelid = 'salesforce.contact'::regclass AND attname = 'rank__c'") == "numeric"

    emulator.control("PATCH", f"records/Contact/{cid}", {
        "Rank__c": 2.5, "Languages__c": 42, "Score__c": True, "Title": "after the type change"})
    wait_for(lambda: query_value(db, "SELECT title FROM salesforce.contact WHERE id = %s", (cid,))
             == "after the type change", timeout=120, what="a change after the type changes")
    row = query_rows(db, "SELECT rank__c, languages__c, score__c, since__c FROM salesforce.contact"
                         " WHERE id = %s", (cid,))[0]
    # the text column holds the number as Salesforce wrote it
    assert (row[0], float(row[1]), row[2], row[3]) == (
        decimal.Decimal("2.5"), 42.0, decimal.Decimal("1.5"), datetime.date(2020, 1, 2))
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None

    # the operator decides: the view goes, the column becomes timestamptz, the sync follows
    db.execute("DROP VIEW public.since_view")
    db.execute("ALTER TABLE salesforce.contact ALTER COLUMN since__c TYPE timestamptz"
               " USING since__c::timestamp AT TIME ZONE 'UTC'")
    wait_for(lambda: column("Since__c")[2:] == (True, None), timeout=120, what="the column filled again")
    emulator.control("PATCH", f"records/Contact/{cid}", {"Since__c": "2021-05-06T07:08:09.000+0000"})
    wait_for(lambda: query_value(db, "SELECT since__c FROM salesforce.contact WHERE id = %s", (cid,))
             == datetime.datetime(2021, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
             timeout=120, what="the new value in the converted column")


def test_read_a_column_the_operator_drops_is_no_longer_synced_until_added_back(emulator, db):
    """An operator drops a synced column: the sync goes on without its field (no longer
    read nor sent), sequin_sf.columns says so and how to undo it, and the application's
    writes to the table are captured and sent as before. The column added back is
    filled again as records change, and written back again."""
    start_sync(db, emulator, ["Contact"])
    wait_backfilled(db, "emu")
    cid = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")

    def title_column():
        return query_rows(db, "SELECT active, note FROM sequin_sf.columns"
                              " WHERE collection = 'Contact' AND field_name = 'Title'")[0]

    db.execute("ALTER TABLE salesforce.contact DROP COLUMN title")
    wait_for(lambda: title_column()[0] is False, timeout=60, what="the dropped column noticed")
    assert "ALTER TABLE salesforce.contact ADD COLUMN title text" in title_column()[1]

    def written_back(sql):
        db.execute(sql, (cid,))
        entry = query_value(db, "SELECT max(id) FROM salesforce._sync_write_log")
        assert wait_settled(db, entry) == "succeeded"

    written_back("UPDATE salesforce.contact SET last_name = 'After-Drop' WHERE id = %s")
    assert sf_records(emulator, f"SELECT LastName FROM Contact WHERE Id = '{cid}'")[0]["LastName"] == "After-Drop"
    emulator.control("PATCH", f"records/Contact/{cid}", {"Title": "Not-Synced", "FirstName": "Still-Synced"})
    wait_for(lambda: query_value(db, "SELECT first_name FROM salesforce.contact WHERE id = %s", (cid,))
             == "Still-Synced", timeout=120, what="a change read without the dropped column")
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None

    db.execute("ALTER TABLE salesforce.contact ADD COLUMN title text")
    wait_for(lambda: title_column() == (True, None), timeout=120, what="the column filled again")
    emulator.control("PATCH", f"records/Contact/{cid}", {"Title": "Synced-Again"})
    wait_for(lambda: query_value(db, "SELECT title FROM salesforce.contact WHERE id = %s", (cid,))
             == "Synced-Again", timeout=120, what="the column added back filled")
    written_back("UPDATE salesforce.contact SET title = 'From-Postgres' WHERE id = %s")
    assert sf_records(emulator, f"SELECT Title FROM Contact WHERE Id = '{cid}'")[0]["Title"] == "From-Postgres"


def test_read_calculated_fields_are_refreshed_on_schedule_and_on_demand(emulator, db):
    """A Contact formula reads its Account's Name. Renaming the Account changes the
    formula's value without moving the Contact's SystemModstamp, so polls never see it;
    a refresh of calculated fields does, with an `updated` event holding the old value,
    at one API call per 2,000 records."""
    emulator.control("POST", "schema/Contact/fields",
                     {"name": "Account_Name__c", "type": "string", "formula": "Account.Name"})
    start_sync(db, emulator, ["Contact"])
    wait_backfilled(db, "emu")
    cid, aid = query_rows(db, "SELECT id, account_id FROM salesforce.contact"
                              " WHERE account_id IS NOT NULL ORDER BY id LIMIT 1")[0]
    old_name = query_value(db, "SELECT account_name__c FROM salesforce.contact WHERE id = %s", (cid,))
    assert old_name == sf_records(emulator, f"SELECT Name FROM Account WHERE Id = '{aid}'")[0]["Name"]
    assert query_value(db, "SELECT calculated FROM sequin_sf.columns WHERE field_name = 'Account_Name__c'")

    emulator.control("PATCH", f"records/Account/{aid}", {"Name": "Renamed Account"})
    # a later change of another Contact arrives: polls ran after the rename...
    other = query_value(db, "SELECT id FROM salesforce.contact WHERE id <> %s ORDER BY id LIMIT 1", (cid,))
    emulator.control("PATCH", f"records/Contact/{other}", {"Title": "polled"})
    wait_for(lambda: query_value(db, "SELECT title FROM salesforce.contact WHERE id = %s", (other,))
             == "polled", timeout=120, what="a poll after the rename")
    # ...and did not see the formula change, as Salesforce documents
    assert query_value(db, "SELECT account_name__c FROM salesforce.contact WHERE id = %s", (cid,)) == old_name

    # on demand
    contacts = len(sf_records(emulator, "SELECT Id FROM Contact"))
    queries_before = emulator.stats()["endpoints"]["query"]
    db.execute("SELECT sequin_sf.refresh_calculated('emu', 'contact')")
    wait_for(lambda: query_value(db, "SELECT account_name__c FROM salesforce.contact WHERE id = %s", (cid,))
             == "Renamed Account", timeout=120, what="the refreshed formula")
    wait_for(lambda: query_value(db, "SELECT calculated_refreshed_at FROM sequin_sf.sync_status") is not None,
             timeout=60, what="the end of the refresh round")
    ev = query_rows(db, "SELECT data->>'Account_Name__c', previous_data FROM salesforce._sync_events"
                        " WHERE upstream_id = %s AND event = 'updated' ORDER BY seq DESC LIMIT 1", (cid,))
    assert ev == [("Renamed Account", {"Account_Name__c": old_name})]
    linked = query_value(db, "SELECT count(*) FROM salesforce.contact WHERE account_id = %s", (aid,))
    assert query_value(db, "SELECT count(*) FROM salesforce._sync_events"
                           " WHERE event = 'updated' AND previous_data ? 'Account_Name__c'") == linked
    # one query call: fewer than 2,000 Contacts (polls go through /composite)
    assert contacts < 2000
    assert emulator.stats()["endpoints"]["query"] - queries_before == 1

    # on a schedule: every minute at the least, refused below with a hint
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("SELECT sequin_sf.alter_collection('emu', 'Contact', calculated_refresh => '10 seconds')")
    assert "API call per 2,000 records" in e.value.diag.message_hint
    db.execute("SELECT sequin_sf.alter_collection('emu', 'Contact', calculated_refresh => '1 minute')")
    assert query_value(db, "SELECT calculated_refresh FROM sequin_sf.sync_status") == datetime.timedelta(minutes=1)
    first = query_value(db, "SELECT calculated_refreshed_at FROM sequin_sf.sync_status")
    emulator.control("PATCH", f"records/Account/{aid}", {"Name": "Renamed Again"})
    wait_for(lambda: query_value(db, "SELECT account_name__c FROM salesforce.contact WHERE id = %s", (cid,))
             == "Renamed Again", timeout=180, what="the scheduled refresh")
    assert query_value(db, "SELECT calculated_refreshed_at FROM sequin_sf.sync_status") > first
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None


def test_read_a_refresh_of_a_collection_without_calculated_fields_ends_at_no_cost(emulator, db):
    start_sync(db, emulator, ["Account"])
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT count(*) FROM sequin_sf.columns WHERE calculated") == 0
    queries_before = emulator.stats()["endpoints"]["query"]
    db.execute("SELECT sequin_sf.refresh_calculated('emu', 'Account')")
    wait_for(lambda: query_value(db, "SELECT calculated_refreshed_at FROM sequin_sf.sync_status")
             is not None, timeout=60, what="the end of the refresh round")
    assert emulator.stats()["endpoints"]["query"] == queries_before
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None


def wait_backfill_under_way(db, rows):
    wait_for(lambda: (query_value(
        db, "SELECT rows_done FROM sequin_sf.sync_status WHERE state = 'backfilling'") or 0) >= rows,
        what="backfill under way")


def restart_and_finish_backfill(db, cluster, total):
    """Restarts the cluster in the middle of the Contact backfill of sync emu, waits for
    it to end, checks each of `total` records is stored once; returns a new connection."""
    db.close()
    cluster.restart()
    db = cluster.connect()
    before = query_value(db, "SELECT rows_done FROM sequin_sf.sync_status")
    assert 0 < before < total, "the restart must happen mid-backfill"
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT count(*) FROM salesforce.contact") == total
    assert query_value(db, "SELECT count(DISTINCT id) FROM salesforce.contact") == total
    return db


def test_read_restart_mid_backfill_resumes_without_duplicates_or_gaps(start_emulator, cluster):
    emulator = start_emulator("--seed", "3", "--generate", "Contact=30000", "--latency-ms", "300")
    db = cluster.connect()
    cluster.install(db)
    start_sync(db, emulator, ["Contact"])
    wait_backfill_under_way(db, 4000)
    db = restart_and_finish_backfill(db, cluster, 30000)
    # never re-read: 15 pages of 2000, one COUNT(), at most one page lost at the restart
    # (beside the database, the page being applied and the one fetched ahead, as
    # sequin-sf's connection drops while the worker is stopped between steps)
    ep = emulator.stats()["endpoints"]
    assert ep["query"] + ep["query_more"] <= 15 + 1 + (2 if SIDECAR_MODE else 1)
    want = sf_snapshot(emulator, "Contact", OBJECTS["Contact"])
    assert pg_snapshot(db, "emu", "Contact", OBJECTS["Contact"]) == want
    db.close()


def test_read_a_rest_backfill_in_id_ranges_resumes_each_range_after_a_restart(
        start_emulator, cluster):
    """With max_concurrent_requests 4 a REST backfill reads 4 Id ranges side by side
    (4 pages in flight while one is stored); the ranges are its cursor, so a restart
    resumes each where it stopped: every record once, nothing missed."""
    emulator = start_emulator("--seed", "8", "--generate", "Contact=30000", "--latency-ms", "200")
    db = cluster.connect()
    cluster.install(db)
    create_emulator_credential(db, emulator)
    db.execute("SELECT sequin_sf.create_sync('emu', credential => 'emu', collections => ARRAY['Contact'],"
               " rate_limit_requests => 100000, max_concurrent_requests => 4,"
               " bulk_threshold => 1000000000)")
    wait_backfill_under_way(db, 6000)
    cursor = query_value(db, "SELECT backfill_cursor FROM sequin_sf._collections")
    assert len(json.loads(cursor)["ranges"]) >= 2, cursor
    db = restart_and_finish_backfill(db, cluster, 30000)
    assert query_value(db, "SELECT rows_done FROM sequin_sf.sync_status") == 30000
    assert "(range 4 of 4)" in cluster.sync_log()
    want = sf_snapshot(emulator, "Contact", OBJECTS["Contact"])
    assert pg_snapshot(db, "emu", "Contact", OBJECTS["Contact"]) == want
    db.close()


def test_read_max_concurrent_requests_bounds_the_requests_in_flight(start_emulator, db):
    """max_concurrent_requests bounds how many of a sync's requests Salesforce serves at
    once, and a REST backfill uses what it allows. Two syncs backfill side by side, each
    from its own org answering every call 100 ms late: at 4 (Id ranges read side by side,
    each range's next page asked for while another is stored) the org serves 4 of its
    requests at once and never more; at 1, one at a time."""
    orgs = {}
    for sync, limit in (("wide", 4), ("narrow", 1)):
        orgs[sync] = start_emulator("--seed", "9", "--generate", "Contact=20000",
                                    "--latency-ms", "100")
        create_emulator_credential(db, orgs[sync], name=sync)
        with db.transaction():
            db.execute(
                "SELECT sequin_sf.create_sync(%s, credential => %s, collections => ARRAY['Contact'],"
                " schema_name => %s, rate_limit_requests => 100000, max_concurrent_requests => %s,"
                " bulk_threshold => 1000000000)",
                (sync, sync, sync, limit))
            if SIDECAR_MODE:
                db.execute("SELECT sequin_sf.pause_sync(%s)", (sync,))
        if SIDECAR_MODE:
            # sequin-sf's own reads of the org for SQL (its objects, Contact's fields) are
            # not the sync's requests: let them end before the backfill is measured
            wait_for(lambda: query_value(db, "SELECT count(*) FROM sequin_sf._org_fields"
                                             " WHERE credential = %s", (sync,)), what="Contact described")
            db.execute("SELECT sequin_sf.resume_sync(%s)", (sync,))
    for sync in orgs:
        wait_backfilled(db, sync)
        assert query_value(db, f"SELECT count(*) FROM {sync}.contact") == 20000
    for sync, peak in (("wide", 4), ("narrow", 1)):
        stats = orgs[sync].stats()
        assert stats["peak_requests_in_flight"] == peak, (sync, stats["peak_endpoints"])


def test_read_a_backfill_that_meets_stored_rows_upserts_them(start_emulator, db, cluster):
    """Backfill pages are inserted as new rows while they are (no upsert cost); a page
    that meets rows already stored, here because the backfill was made to start over,
    is applied again as an upsert, and the table ends with each record once."""
    emulator = start_emulator("--seed", "5", "--generate", "Contact=9000")
    start_sync(db, emulator, ["Contact"])
    db.execute("SELECT sequin_sf.alter_sync('emu', bulk_threshold => 1000000000)")
    wait_backfilled(db, "emu")
    assert "upserting backfill pages" not in cluster.sync_log()
    # the backfill starts over, as if its progress had been lost, on a full table
    db.execute("SELECT sequin_sf.pause_sync('emu')")
    db.execute("UPDATE sequin_sf._collections SET state = 'backfilling', backfill_cursor = NULL,"
               " rows_done = 0")
    db.execute("SELECT sequin_sf.resume_sync('emu')")
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT count(*) FROM salesforce.contact") == 9000
    assert query_value(db, "SELECT count(DISTINCT id) FROM salesforce.contact") == 9000
    assert "upserting backfill pages" in cluster.sync_log()
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None


def test_read_base64_fields_can_be_left_out(start_emulator, db):
    """create_sync(..., base64_fields => 'skip') gives base64 fields no column (the
    default, 'url', stores the path of their bytes); other values are refused."""
    emulator = start_emulator("--seed", "6", "--generate", "Account=3,Contact=3,Attachment=3")
    create_emulator_credential(db, emulator)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("SELECT sequin_sf.create_sync('emu', credential => 'emu',"
                   " collections => ARRAY['Attachment'], base64_fields => 'bytes')")
    assert "'url' stores the path" in e.value.diag.message_hint
    db.execute("SELECT sequin_sf.create_sync('emu', credential => 'emu',"
               " collections => ARRAY['Attachment'], base64_fields => 'skip')")
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT base64_fields FROM sequin_sf.syncs") == "skip"
    assert query_value(db, "SELECT count(*) FROM sequin_sf.columns WHERE field_name = 'Body'") == 0
    assert query_value(db, "SELECT count(*) FROM salesforce.attachment") == 3


def test_read_survives_expired_tokens_503s_and_exhausted_quota(emulator, db):
    start_sync(db, emulator, ["Contact"])
    wait_backfilled(db, "emu")
    cid = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")

    def change_arrives(title):
        emulator.control("PATCH", f"records/Contact/{cid}", {"Title": title})
        wait_for(lambda: query_value(db, "SELECT title FROM salesforce.contact WHERE id = %s", (cid,)) == title,
                 timeout=120, what=f"title {title}")

    emulator.control("POST", "expire_tokens")
    change_arrives("after expired token")

    emulator.control("POST", "faults", {"kind": "503", "count": 3})
    change_arrives("after 503s")

    limit = emulator.control("GET", "limits")["api_limit"]
    emulator.control("PUT", "limits", {"api_used": limit})
    wait_for(lambda: "REQUEST_LIMIT_EXCEEDED" in (query_value(
        db, "SELECT last_error FROM sequin_sf.sync_status") or "") or "Limit" in (query_value(
        db, "SELECT last_error FROM sequin_sf.sync_status") or ""), what="quota error reported")
    emulator.control("PUT", "limits", {"api_used": 0})
    change_arrives("after quota")
    wait_for(lambda: query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None,
             what="error cleared")

    # other clients took the org to 90% of its quota: the sync holds back at its 80%
    # ceiling (and says so) instead of taking the org's last requests
    emulator.control("PUT", "limits", {"api_used": int(limit * 0.9)})
    emulator.control("PATCH", f"records/Contact/{cid}", {"Title": "held back"})
    wait_for(lambda: "ceiling" in (query_value(db, "SELECT last_error FROM sequin_sf.sync_status") or ""),
             timeout=120, what="ceiling reported")
    used = emulator.stats()["api_usage"]["used"]
    emulator.control("PUT", "limits", {"api_used": 0})
    change_arrives("after ceiling")
    assert used <= int(limit * 0.9) + 2, "at most a probe or two past the ceiling"


@pytest.mark.extension_only("credentials created in SQL (sequin-sf credential create checks them: test_plain.py)")
def test_read_bad_credentials_and_unknown_collections_give_clear_errors(emulator, db, cluster):
    db.execute(
        "SELECT sequin_sf.create_credential('bad', kind => 'refresh_token', login_url => %s,"
        " client_id => 'sequin-emulator', client_secret => 'wrong-secret-XYZ', refresh_token => 'nope')",
        (emulator.base_url,))
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as err:
        db.execute("SELECT sequin_sf.create_sync('s1', credential => 'bad', collections => ARRAY['Contact'])")
    assert "could not log in to Salesforce with credential \"bad\"" in str(err.value)
    assert "wrong-secret-XYZ" not in str(err.value)

    create_emulator_credential(db, emulator)
    with pytest.raises(psycopg.errors.UndefinedObject) as err:
        db.execute("SELECT sequin_sf.create_sync('s2', credential => 'emu', collections => ARRAY['Contat'])")
    assert '"Contat" does not exist' in str(err.value)
    assert "Contact" in (err.value.diag.message_hint or "")

    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        db.execute("SELECT sequin_sf.create_credential('x', kind => 'magic')")
    assert "kind" in str(err.value)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        db.execute("SELECT sequin_sf.create_credential('x', kind => 'password', client_id => 'c')")
    assert "client_secret" in str(err.value) and "username" in str(err.value)
    with pytest.raises(psycopg.errors.UndefinedObject):
        db.execute("SELECT sequin_sf.create_sync('s3', credential => 'missing', collections => ARRAY['Contact'])")
    assert query_value(db, "SELECT count(*) FROM sequin_sf.syncs") == 0
    assert "wrong-secret-XYZ" not in cluster.sync_log()


@pytest.mark.extension_only("credentials created in SQL")
def test_read_secrets_encrypted_and_hidden_from_unprivileged_roles(emulator, db, cluster):
    create_emulator_credential(db, emulator)
    secret = query_value(db, "SELECT secret FROM sequin_sf._credentials WHERE name = 'emu'")
    assert b"emulator-secret" not in secret and b"emulator-refresh-token" not in secret
    db.execute("CREATE ROLE mallory LOGIN")
    other = cluster.connect(user="mallory")
    for rel in ("sequin_sf._credentials", "sequin_sf.credentials"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            other.execute(f"SELECT * FROM {rel}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        other.execute("SELECT sequin_sf.create_credential('m', kind => 'client_credentials',"
                      " client_id => 'a', client_secret => 'b')")
    # the views users may read carry no secret
    shown = json.dumps(query_rows(db, "SELECT * FROM sequin_sf.credentials"), default=str)
    assert "emulator-secret" not in shown and "emulator-refresh-token" not in shown
    other.close()
    assert "emulator-refresh-token" not in cluster.sync_log()


@pytest.mark.extension_only("the background worker's crash, SIGHUP and shutdown")
def test_read_worker_lifecycle_crash_reload_and_stop(emulator, db, cluster):
    import os
    import signal

    start_sync(db, emulator, ["Account"])
    wait_backfilled(db, "emu")
    pid = wait_for(lambda: worker_pid(db),
                   what="worker")
    db.execute("SELECT pg_reload_conf()")
    wait_for(lambda: "sequin_sf worker reloaded its configuration" in cluster.log(), what="SIGHUP reload")
    db.close()
    os.kill(pid, signal.SIGKILL)  # a crash: the postmaster resets and restarts the worker

    def new_worker():
        with cluster.connect() as c:
            p = worker_pid(c)
            return p if p and p != pid else None

    wait_for(new_worker, timeout=120, what="restarted worker")
    c = cluster.connect()
    # The test cluster runs with synchronous_commit = off, so the crash may take the
    # last commits of the backfill with it: the restarted worker redoes them.
    wait_backfilled(c, "emu")
    aid = wait_for(lambda: query_value(c, "SELECT id FROM salesforce.account ORDER BY id LIMIT 1"),
                   what="an account after the crash")
    emulator.control("PATCH", f"records/Account/{aid}", {"Name": "After Crash"})
    wait_for(lambda: query_value(c, "SELECT name FROM salesforce.account WHERE id = %s", (aid,)) == "After Crash",
             what="sync continues after the crash")
    c.close()
    cluster.stop()  # fast shutdown waits for the worker to honour SIGTERM
    assert "sequin_sf worker stopping" in cluster.log()
    cluster.start()


def test_read_management_lifecycle(emulator, db):
    emulator.control("POST", "schema/objects", {"name": "Shipment__c", "fields": [
        {"name": "Weight__c", "type": "double", "precision": 10, "scale": 2}]})
    emulator.control("POST", "records/Shipment__c", [{"Name": "S1", "Weight__c": 12.5}])
    start_sync(db, emulator, ["Account"])
    custom = [r[0] for r in query_rows(
        db, "SELECT name FROM sequin_sf.available_collections('emu') WHERE custom")]
    assert "Shipment__c" in custom
    db.execute("SELECT sequin_sf.add_collection('emu', 'Shipment__c')")
    wait_backfilled(db, "emu")
    assert query_rows(db, "SELECT name, weight__c FROM salesforce.shipment__c") == [("S1", decimal.Decimal("12.5"))]
    db.execute("SELECT sequin_sf.add_collection('emu', 'opportunity')")
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT count(*) FROM salesforce.opportunity") == emulator.stats()["records"]["Opportunity"]
    db.execute("SELECT sequin_sf.pause_sync('emu')")
    assert query_value(db, "SELECT state FROM sequin_sf.syncs") == "paused"
    db.execute("SELECT sequin_sf.resume_sync('emu')")
    db.execute("SELECT sequin_sf.remove_collection('emu', 'Account')")
    assert query_value(db, "SELECT to_regclass('salesforce.account')") is None
    db.execute("SELECT sequin_sf.drop_sync('emu')")
    assert query_value(db, "SELECT to_regnamespace('salesforce')") is None
    assert query_value(db, "SELECT count(*) FROM sequin_sf.sync_status") == 0


def test_read_bulk_backfill_of_a_large_collection_matches_emulator(start_emulator, cluster):
    """Over bulk_threshold (50,000) rows the backfill uses a Bulk 2.0 query job; compound
    fields, which Bulk cannot select, are rebuilt from their components."""
    emulator = start_emulator("--seed", "5", "--generate", "Contact=52000")
    db = cluster.connect()
    cluster.install(db)
    start_sync(db, emulator, ["Contact"])
    peak = peak_private_memory_while(lambda: wait_backfilled(db, "emu"), cluster)
    # the 50,000-row results page is streamed to a file, never held in the worker
    assert 0 < peak < 64 * 1024, f"worker RssAnon peaked at {peak} KiB"
    assert query_value(db, "SELECT backfill_mode FROM sequin_sf.sync_status") == "bulk"
    ep = emulator.stats()["endpoints"]
    assert ep["bulk2_query"] >= 3 and ep["query"] <= 2  # the COUNT() and maybe one poll
    fields = OBJECTS["Contact"] + ["MailingCity", "MailingAddress"]
    want = sf_snapshot(emulator, "Contact", fields)
    got = pg_snapshot(db, "emu", "Contact", fields)
    assert len(got) == 52000
    assert got == want
    db.close()


FIRST_LOAD = "Account=40,Contact=60,Opportunity=40,OpportunityContactRole=30,Event=30,Invoice__c=30,Case=20,CaseHistory=30"


@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_read_first_loads_hold_every_field_as_salesforce_sends_it(start_emulator, cluster, path):
    """A first load copies each page straight into the table (rewritten for COPY beside
    the apply): every field of every row equals what the REST API returns, for both
    REST pages and Bulk CSV (bulk_threshold 1 sends every object Bulk can read to Bulk):
    numbers, dates, datetimes, booleans, multi-select picklists, anyType values,
    compound addresses, nulls and empty values."""
    emulator = start_emulator("--seed", "12", "--generate", FIRST_LOAD)
    objects = [o.split("=")[0] for o in FIRST_LOAD.split(",")]
    db = cluster.connect()
    cluster.install(db)
    create_emulator_credential(db, emulator)
    db.execute(
        "SELECT sequin_sf.create_sync('emu', credential => 'emu', collections => %s,"
        " rate_limit_requests => 100000, bulk_threshold => %s)",
        (objects, 1 if path == "bulk" else 50000))
    wait_backfilled(db, "emu")
    modes = dict(query_rows(db, "SELECT collection, backfill_mode FROM sequin_sf.sync_status"))
    if path == "bulk":
        assert modes["Account"] == modes["Contact"] == modes["Invoice__c"] == "bulk", modes
    else:
        assert set(modes.values()) == {"rest"}, modes
    for obj in objects:
        fields = [f for (f,) in query_rows(
            db, "SELECT field_name FROM sequin_sf.columns WHERE sync_name = 'emu'"
            " AND collection = %s AND active AND sf_type <> 'base64' ORDER BY position", (obj,))]
        assert fields[0] == "Id" or "Id" in fields
        fields.remove("Id")
        fields.insert(0, "Id")
        want = sf_snapshot(emulator, obj, fields)
        got = pg_snapshot(db, "emu", obj, fields)
        assert len(got) == len(want) > 0, obj
        assert got == want, obj
    db.close()


def test_read_failed_bulk_job_falls_back_to_rest_instead_of_retrying_forever(emulator, db, cluster):
    """A Bulk query job Salesforce fails is not recreated again and again: the
    backfill says why and finishes through REST pages."""
    emulator.control("POST", "faults", {"kind": "bulk_job_failed", "count": 5,
                                        "message": "InternalServerError: retry later"})
    create_emulator_credential(db, emulator)
    db.execute(
        "SELECT sequin_sf.create_sync('emu', credential => 'emu', collections => ARRAY['Contact'],"
        " rate_limit_requests => 100000, bulk_threshold => 1)"
    )
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT backfill_mode FROM sequin_sf.sync_status") == "rest"
    assert query_value(db, "SELECT count(*) FROM salesforce.contact") == \
        emulator.stats()["records"]["Contact"]
    # one job created and its state read, not a new job every 30 seconds
    assert emulator.stats()["endpoints"]["bulk2_query"] <= 4
    # said in the log and, until the backfill went on, in sync_status.last_error
    assert "ended Failed: InternalServerError: retry later; backfilling through the REST API" \
        in cluster.sync_log()
    emulator.control("DELETE", "faults")


def test_read_query_timeouts_move_the_backfill_to_bulk_then_to_smaller_pages(emulator, db, cluster):
    """A backfill query that runs past Salesforce's limit (QUERY_TIMEOUT: here the
    COUNT()) moves the backfill to a Bulk job; when Bulk has already failed for the
    collection, the REST pages are cut smaller instead. Either way the table ends equal
    to the org."""
    emulator.control("POST", "faults", {"kind": "query_timeout", "count": 1})
    start_sync(db, emulator, ["Contact"])
    db.execute("SELECT sequin_sf.alter_sync('emu', bulk_threshold => 1000000000)")
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT backfill_mode FROM sequin_sf.sync_status") == "bulk"
    assert "QUERY_TIMEOUT" in cluster.sync_log() and "backfilling through a Bulk query job instead" in cluster.sync_log()
    want = sf_snapshot(emulator, "Contact", OBJECTS["Contact"])
    assert pg_snapshot(db, "emu", "Contact", OBJECTS["Contact"]) == want

    # the COUNT() times out (to Bulk), Bulk fails (to REST), then three REST pages time
    # out: pages of 1000, 500, then 250
    db.execute("SELECT sequin_sf.drop_sync('emu')")
    emulator.control("POST", "faults", {"kind": "bulk_job_failed", "count": 1})
    emulator.control("POST", "faults", {"kind": "query_timeout", "count": 4})
    db.execute(
        "SELECT sequin_sf.create_sync('emu2', credential => 'emu', collections => ARRAY['Contact'],"
        " rate_limit_requests => 100000, bulk_threshold => 1)")
    wait_backfilled(db, "emu2")
    assert query_value(db, "SELECT backfill_mode FROM sequin_sf.sync_status") == "rest"
    assert "reading pages of 250 records instead" in cluster.sync_log()
    assert pg_snapshot(db, "emu2", "Contact", OBJECTS["Contact"]) == want
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None


@pytest.mark.extension_only("the background worker's pid")
def test_read_apply_error_is_reported_and_retried_without_losing_the_change(emulator, db):
    """A change Postgres refuses (here a user's CHECK constraint) is not dropped: the
    worker reports it in sync_status, keeps running and applies it once possible."""
    start_sync(db, emulator, ["Contact"])
    wait_backfilled(db, "emu")
    pid = worker_pid(db)
    cid = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    db.execute("ALTER TABLE salesforce.contact ADD CONSTRAINT no_interns CHECK (title <> 'Intern')")
    emulator.control("PATCH", f"records/Contact/{cid}", {"Title": "Intern"})
    err = wait_for(lambda: query_value(db, "SELECT last_error FROM sequin_sf.sync_status"), what="reported error")
    assert "no_interns" in err
    assert worker_pid(db) == pid
    db.execute("ALTER TABLE salesforce.contact DROP CONSTRAINT no_interns")
    wait_for(lambda: query_value(db, "SELECT title FROM salesforce.contact WHERE id = %s", (cid,)) == "Intern",
             timeout=120, what="change applied after the fix")
    wait_for(lambda: query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None, what="error cleared")


def test_read_two_orgs_in_one_database_each_in_its_own_schema(start_emulator, db):
    org_a = start_emulator("--seed", "11", "--generate", "Account=30")
    org_b = start_emulator("--seed", "12", "--generate", "Account=45")
    create_emulator_credential(db, org_a, name="org_a")
    create_emulator_credential(db, org_b, name="org_b")
    for name, schema in (("org_a", "acme"), ("org_b", "globex")):
        db.execute(
            "SELECT sequin_sf.create_sync(%s, credential => %s, collections => ARRAY['Account'],"
            " schema_name => %s, rate_limit_requests => 100000)", (name, name, schema))
    wait_backfilled(db, "org_a")
    wait_backfilled(db, "org_b")
    assert query_value(db, "SELECT count(*) FROM acme.account") == 30
    assert query_value(db, "SELECT count(*) FROM globex.account") == 45
    aid = query_value(db, "SELECT id FROM globex.account ORDER BY id LIMIT 1")
    org_b.control("PATCH", f"records/Account/{aid}", {"Name": "Globex Prime"})
    wait_for(lambda: query_value(db, "SELECT name FROM globex.account WHERE id = %s", (aid,)) == "Globex Prime",
             what="change in org b")
    assert query_value(db, "SELECT count(*) FROM acme._sync_events") == 0
    assert query_value(db, "SELECT count(*) FROM globex._sync_events") == 1
    with pytest.raises(psycopg.errors.DuplicateSchema):
        db.execute("SELECT sequin_sf.create_sync('org_c', credential => 'org_a',"
                   " collections => ARRAY['Account'], schema_name => 'acme')")


@pytest.mark.extension_only("kills the background worker")
def test_read_restart_mid_bulk_backfill_resumes_from_the_persisted_job(start_emulator, cluster):
    emulator = start_emulator("--seed", "4", "--generate", "Contact=150000", "--latency-ms", "300")
    db = cluster.connect()
    cluster.install(db)
    start_sync(db, emulator, ["Contact"])
    wait_for(lambda: (query_value(
        db, "SELECT rows_done FROM sequin_sf.sync_status WHERE state = 'backfilling'") or 0) >= 50000,
        timeout=300, what="first Bulk page applied")
    job = query_value(db, "SELECT bulk_job_id FROM sequin_sf._collections")
    db.close()
    cluster.restart()
    db = cluster.connect()
    assert 0 < query_value(db, "SELECT rows_done FROM sequin_sf.sync_status") < 150000
    wait_backfilled(db, "emu", timeout=300)
    assert query_value(db, "SELECT bulk_job_id FROM sequin_sf._collections") == job
    assert query_value(db, "SELECT count(*) FROM salesforce.contact") == 150000
    assert query_value(db, "SELECT count(DISTINCT id) FROM salesforce.contact") == 150000
    assert query_value(db, "SELECT rows_done FROM sequin_sf.sync_status") == 150000
    db.close()


def connect_or_none(cluster):
    """A connection, or None while Postgres restarts after a crash."""
    try:
        return cluster.connect()
    except psycopg.OperationalError:
        return None


def peak_private_memory_while(action, cluster):
    """Runs action() while sampling the RssAnon of the process running the sync (the
    worker, or the cluster's sequin-sf); returns the peak in KiB."""
    stop, peak = threading.Event(), [0]

    def sample():
        with cluster.connect() as c:
            while not stop.is_set():
                pid = cluster.sidecar.proc.pid if cluster.sidecar else worker_pid(c)
                try:
                    with open(f"/proc/{pid}/status") as f:
                        kib = [int(line.split()[1]) for line in f if line.startswith("RssAnon:")]
                    peak[0] = max([peak[0], *kib])
                except (OSError, TypeError):
                    pass
                stop.wait(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        action()
    finally:
        stop.set()
        t.join()
    return peak[0]


def page_files(datadir):
    return [f for f in os.listdir(datadir) if f.startswith(("sequin_sf_page_", "sequin_sf_bulk_"))]


@pytest.mark.extension_only("kills the background worker")
def test_read_worker_killed_mid_bulk_backfill_leaves_no_page_file(start_emulator, cluster):
    """A worker killed while results pages sit in the data directory: Postgres restarts
    every backend, the supervisor removes what was left, and the job resumes."""
    emulator = start_emulator("--seed", "6", "--generate", "Contact=120000", "--latency-ms", "200")
    db = cluster.connect()
    cluster.install(db)
    start_sync(db, emulator, ["Contact"])
    wait_for(lambda: page_files(cluster.datadir), timeout=300, what="a results page on disk")
    killed = worker_pid(db)
    os.kill(killed, signal.SIGKILL)
    db.close()

    def restarted_worker():
        c = connect_or_none(cluster)
        if c is None:
            return None
        with c:
            pid = worker_pid(c)
        return pid if pid and pid != killed else None

    wait_for(restarted_worker, timeout=120, what="the sync's worker back after the crash")
    db = cluster.connect()
    wait_backfilled(db, "emu", timeout=300)
    assert query_value(db, "SELECT count(DISTINCT id) FROM salesforce.contact") == 120000
    wait_for(lambda: not page_files(cluster.datadir), timeout=30, what="no page file left")
    db.close()


@pytest.mark.extension_only("the background worker's shutdown")
def test_read_shutdown_is_not_held_up_by_a_hanging_salesforce_request(emulator, db, cluster):
    import os

    start_sync(db, emulator, ["Account"])
    wait_backfilled(db, "emu")
    # every poll now hangs for 65 s (the emulator's "timeout" fault)
    emulator.control("POST", "faults", {"kind": "timeout", "count": 1000, "path_contains": "/composite"})
    wait_for(lambda: emulator.control("GET", "faults")["faults"][0]["remaining"] < 1000,
             what="a poll in flight")
    db.close()
    cluster.stop()  # pg_ctl -m fast -w gives up after 60 s, before the request would end
    assert not os.path.exists(os.path.join(cluster.datadir, "postmaster.pid"))
    assert "sequin_sf worker stopping" in cluster.log()
    emulator.control("DELETE", "faults")
    cluster.start()


@pytest.mark.extension_only("credentials created in SQL")
def test_read_password_credential_logs_in_and_syncs(emulator, db):
    from harness import CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME

    db.execute(
        "SELECT sequin_sf.create_credential('pw', kind => 'password', login_url => %s,"
        " client_id => %s, client_secret => %s, username => %s, password => %s)",
        (emulator.base_url, CLIENT_ID, CLIENT_SECRET, USERNAME, PASSWORD))
    assert query_rows(db, "SELECT kind, username FROM sequin_sf.credentials") == [("password", USERNAME)]
    db.execute("SELECT sequin_sf.create_sync('pw', credential => 'pw', collections => ARRAY['Account'],"
               " rate_limit_requests => 100000)")
    wait_backfilled(db, "pw")
    assert query_value(db, "SELECT count(*) FROM salesforce.account") == emulator.stats()["records"]["Account"]


def test_read_bulk_backfill_with_events_emits_one_inserted_event_per_row(start_emulator, cluster):
    """backfill_events => true takes the record-by-record (JSON) Bulk path: every row also
    lands in the event stream, keyed by API names, compound fields rebuilt."""
    emulator = start_emulator("--seed", "8", "--generate", "Account=1500")
    db = cluster.connect()
    cluster.install(db)
    create_emulator_credential(db, emulator)
    db.execute("SELECT sequin_sf.create_sync('emu', credential => 'emu', collections => ARRAY['Account'],"
               " rate_limit_requests => 100000, backfill_events => true, bulk_threshold => 1000)")
    wait_backfilled(db, "emu")
    assert query_value(db, "SELECT backfill_mode FROM sequin_sf.sync_status") == "bulk"
    fields = OBJECTS["Account"] + ["BillingAddress"]
    want = sf_snapshot(emulator, "Account", fields)
    assert pg_snapshot(db, "emu", "Account", fields) == want
    evs = query_rows(db, "SELECT event, count(*), count(DISTINCT upstream_id) FROM salesforce._sync_events GROUP BY 1")
    assert evs == [("inserted", 1500, 1500)]
    some = next(iter(want))
    data = query_value(db, "SELECT data FROM salesforce._sync_events WHERE upstream_id = %s", (some,))
    assert data["Id"] == some and "Name" in data
    db.close()

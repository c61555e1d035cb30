"""Change Data Capture end to end: the emulator serves the Pub/Sub API, the sync
subscribes for the objects the org selected for CDC and keeps polling the others.

Each test proves where a change came from: collections on events are polled only to
reconcile (once an hour here), so a change that shows up within seconds came as an
event; `last_poll_at` and the emulator's request counts confirm no poll ran.
"""

import json
import threading
import time
import urllib.parse
import urllib.request

import pytest

from harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    Cluster,
    Emulator,
    create_emulator_credential,
    query_rows,
    query_value,
    sf_records,
    wait_backfilled,
    wait_for,
    worker_pid,
)

SYNC = "cdc"


class Rest:
    """A user's own REST client of the emulator (changes made in "Salesforce")."""

    def __init__(self, emu):
        form = urllib.parse.urlencode({
            "grant_type": "refresh_token", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
        }).encode()
        with urllib.request.urlopen(
            urllib.request.Request(f"{emu.base_url}/services/oauth2/token", data=form), timeout=30
        ) as resp:
            tok = json.loads(resp.read())
        self.base = f"{tok['instance_url']}/services/data/v61.0"
        self.token = tok["access_token"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def create(self, obj, fields):
        return self.call("POST", f"sobjects/{obj}", fields)["id"]

    def update(self, obj, rid, fields):
        self.call("PATCH", f"sobjects/{obj}/{rid}", fields)

    def delete(self, obj, rid):
        self.call("DELETE", f"sobjects/{obj}/{rid}")


@pytest.fixture
def org():
    """An org with Contact and Account selected for CDC (Opportunity not), a sync of
    the three, backfilled, with Contact and Account on events."""
    emu = Emulator("--pubsub-listen", "127.0.0.1:0", "--pubsub-keepalive-ms", "500",
                   "--seed", "11", "--generate", "Account=20,Contact=60,Opportunity=20")
    emu.control("PUT", "cdc", {"objects": ["Contact", "Account"]})
    cluster = Cluster()
    conn = cluster.connect()
    try:
        cluster.install(conn)
        create_emulator_credential(conn, emu)
        conn.execute(
            "SELECT sequin_sf.create_sync(%s, credential => 'emu',"
            " collections => ARRAY['Contact', 'Account', 'Opportunity'])", (SYNC,))
        conn.execute(
            "SELECT sequin_sf.alter_sync(%s, pubsub_endpoint => %s,"
            " reconcile_interval => '1 hour')",
            (SYNC, "http://" + emu.control("GET", "cdc")["pubsub"]))
        wait_backfilled(conn, SYNC)
        wait_on_events(conn)
        yield emu, cluster, conn
    finally:
        conn.close()
        cluster.destroy()
        emu.stop()


def sources(conn):
    return dict(query_rows(
        conn, "SELECT collection, change_source FROM sequin_sf.sync_status WHERE sync_name = %s",
        (SYNC,)))


def wait_on_events(conn):
    wait_for(lambda: sources(conn) == {"Contact": "events", "Account": "events",
                                       "Opportunity": "polling"}
             and (query_value(conn, "SELECT events_status FROM sequin_sf.syncs") or "")
             .startswith("streaming"),
             timeout=60, what="Contact and Account on change events")
    # the first reconciliation after the switch has run
    wait_for(lambda: query_value(
        conn, "SELECT bool_and(last_poll_at IS NOT NULL) FROM sequin_sf.sync_status"),
        what="first polls")


def last_polls(conn):
    return dict(query_rows(
        conn, "SELECT collection, last_poll_at FROM sequin_sf.sync_status"
        " WHERE change_source = 'events'"))


def contact_row(conn, rid):
    rows = query_rows(
        conn, "SELECT last_name, title, email FROM salesforce.contact WHERE id = %s", (rid,))
    return rows[0] if rows else None


def assert_table_equals_org(emu, conn, obj="Contact", table="contact",
                            fields=("LastName", "Title", "Email"),
                            columns=("last_name", "title", "email")):
    org_rows = {r["Id"]: tuple(r[f] for f in fields) for r in sf_records(
        emu, f"SELECT Id, {', '.join(fields)} FROM {obj}")}

    def same():
        got = {r[0]: tuple(r[1:]) for r in query_rows(
            conn, f"SELECT id, {', '.join(columns)} FROM salesforce.{table}")}
        return got == org_rows

    wait_for(same, timeout=60, what=f"salesforce.{table} equal to the org's {obj}")


def test_changes_of_each_kind_arrive_as_events_without_polling(org):
    emu, _, conn = org
    rest = Rest(emu)
    polls_before = last_polls(conn)
    acct = query_value(conn, "SELECT id FROM salesforce.account LIMIT 1")
    # create, update, delete, undelete a contact; update an account
    rid = rest.create("Contact", {"LastName": "Evented", "Title": "New", "AccountId": acct})
    wait_for(lambda: contact_row(conn, rid) == ("Evented", "New", None), timeout=20,
             what="the created contact")
    rest.update("Contact", rid, {"Title": "Changed", "Email": "e@example.com"})
    wait_for(lambda: contact_row(conn, rid) == ("Evented", "Changed", "e@example.com"),
             timeout=20, what="the update")
    rest.update("Account", acct, {"Name": "Renamed by event"})
    wait_for(lambda: query_value(conn, "SELECT name FROM salesforce.account WHERE id = %s",
                                 (acct,)) == "Renamed by event", timeout=20, what="account update")
    rest.delete("Contact", rid)
    wait_for(lambda: contact_row(conn, rid) is None, timeout=20, what="the delete")
    # a restore from the Recycle Bin (the control API stands in for the UI)
    emu.control("POST", f"records/Contact/{rid}/undelete")
    wait_for(lambda: contact_row(conn, rid) == ("Evented", "Changed", "e@example.com"),
             timeout=20, what="the undelete")

    # no poll of the collections on events ran: events brought all of it
    assert last_polls(conn) == polls_before
    events = query_rows(
        conn, "SELECT event, previous_data FROM salesforce._sync_events"
        " WHERE upstream_id = %s ORDER BY seq", (rid,))
    kinds = [e for e, _ in events]
    assert kinds == ["inserted", "updated", "deleted", "inserted"], kinds
    # an update's previous_data holds the prior values of what changed, as a poll's
    assert events[1][1]["Title"] == "New" and events[1][1]["Email"] is None
    # the row's data is the whole row keyed by API name
    data = query_value(conn, "SELECT data FROM salesforce._sync_events WHERE upstream_id = %s"
                       " AND event = 'updated'", (rid,))
    assert data["LastName"] == "Evented" and data["Title"] == "Changed"
    assert_table_equals_org(emu, conn)


def test_objects_not_selected_keep_polling(org):
    emu, _, conn = org
    note = query_value(conn, "SELECT change_source_note FROM sequin_sf.sync_status"
                       " WHERE collection = 'Opportunity'")
    assert "not selected for Change Data Capture" in note
    opp = query_value(conn, "SELECT id FROM salesforce.opportunity LIMIT 1")
    Rest(emu).update("Opportunity", opp, {"Name": "Polled"})
    wait_for(lambda: query_value(conn, "SELECT name FROM salesforce.opportunity WHERE id = %s",
                                 (opp,)) == "Polled", timeout=30, what="a polled change")
    # selecting it in "Setup" moves it to events at the next selection read
    conn.execute("SELECT sequin_sf.alter_sync(%s, describe_interval => '2 seconds')", (SYNC,))
    emu.control("PUT", "cdc", {"objects": ["Contact", "Account", "Opportunity"]})
    wait_for(lambda: sources(conn)["Opportunity"] == "events", timeout=30,
             what="Opportunity on events")


def test_own_writes_come_back_once_and_are_not_echoed(org):
    emu, _, conn = org
    rid = query_value(conn, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    conn.execute("UPDATE salesforce.contact SET title = 'Written here' WHERE id = %s", (rid,))
    assert query_rows(conn, "SELECT succeeded, failed, unsettled"
                      " FROM sequin_sf.await_writes('30 seconds')") == [(1, 0, 0)]
    org_row = sf_records(emu, f"SELECT Title, LastModifiedDate FROM Contact WHERE Id = '{rid}'")[0]
    assert org_row["Title"] == "Written here"
    # the event of our own write brings what Salesforce set (LastModifiedDate)...
    wait_for(lambda: query_value(
        conn, "SELECT to_char(last_modified_date AT TIME ZONE 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+0000\"') FROM salesforce.contact WHERE id = %s",
        (rid,)) == org_row["LastModifiedDate"], timeout=20, what="the echo's LastModifiedDate")
    time.sleep(2)
    # ...and nothing is written back again: one entry, one change in Salesforce
    assert query_value(conn, "SELECT count(*) FROM salesforce._sync_write_log"
                       " WHERE api_id = %s", (rid,)) == 1
    assert query_value(conn, "SELECT title FROM salesforce.contact WHERE id = %s",
                       (rid,)) == "Written here"
    # one 'updated' event for the change, as a poll would give
    assert query_value(conn, "SELECT count(*) FROM salesforce._sync_events"
                       " WHERE upstream_id = %s AND event = 'updated'", (rid,)) == 1


def test_a_gap_and_an_overflow_are_read_again(org):
    emu, _, conn = org
    rest = Rest(emu)
    ids = [r[0] for r in query_rows(conn, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 3")]
    # changes Salesforce could not send as events: made while Contact is not selected
    emu.control("PUT", "cdc", {"objects": ["Account"]})
    rest.update("Contact", ids[0], {"Title": "Gap"})
    for rid in ids[1:]:
        rest.update("Contact", rid, {"Title": "Overflow"})
    emu.control("PUT", "cdc", {"objects": ["Contact", "Account"]})
    time.sleep(1)
    assert contact_row(conn, ids[0])[1] != "Gap"
    emu.control("POST", "cdc/gap", {"object": "Contact", "changeType": "GAP_UPDATE",
                                    "ids": [ids[0]]})
    wait_for(lambda: contact_row(conn, ids[0])[1] == "Gap", timeout=30, what="gap re-read")
    # an overflow names no record: the object is read again
    emu.control("POST", "cdc/overflow", {"object": "Contact"})
    wait_for(lambda: all(contact_row(conn, r)[1] == "Overflow" for r in ids[1:]), timeout=30,
             what="overflow re-read")
    assert_table_equals_org(emu, conn)


def test_an_expired_replay_id_is_caught_up_by_polling(org):
    emu, _, conn = org
    rest = Rest(emu)
    rid = query_value(conn, "SELECT id FROM salesforce.contact ORDER BY id DESC LIMIT 1")
    wait_for(lambda: query_value(conn, "SELECT replay_id IS NOT NULL FROM sequin_sf._syncs"),
             what="a stored replay id")
    conn.execute("SELECT sequin_sf.pause_sync(%s)", (SYNC,))
    wait_for(lambda: worker_pid(conn, SYNC) is None, what="the sync's worker to stop")
    rest.update("Contact", rid, {"Title": "While paused"})
    created = rest.create("Contact", {"LastName": "Paused", "Title": "Made while paused"})
    emu.control("POST", "cdc/expire_replay_ids", {})
    conn.execute("SELECT sequin_sf.resume_sync(%s)", (SYNC,))
    wait_for(lambda: contact_row(conn, rid) and contact_row(conn, rid)[1] == "While paused"
             and contact_row(conn, created) is not None, timeout=60,
             what="changes made while the replay id expired")
    assert_table_equals_org(emu, conn)
    # and events flow again afterwards
    wait_for(lambda: (query_value(conn, "SELECT events_status FROM sequin_sf.syncs") or "")
             .startswith("streaming"), timeout=60, what="streaming again")
    rest.update("Contact", rid, {"Title": "After"})
    wait_for(lambda: contact_row(conn, rid)[1] == "After", timeout=20, what="event after")


@pytest.mark.parametrize("crash", ["worker", "postgres"])
def test_a_crash_mid_stream_loses_and_duplicates_nothing(org, crash):
    emu, cluster, conn = org
    rest = Rest(emu)
    ids = [r[0] for r in query_rows(conn, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 10")]
    stop = threading.Event()
    done = []

    def writer():
        n = 0
        while not stop.is_set() and n < 60:
            rid = ids[n % len(ids)]
            rest.update("Contact", rid, {"Title": f"v{n}"})
            done.append((rid, f"v{n}"))
            n += 1
            time.sleep(0.05)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1)
    if crash == "worker":
        cluster.kill_sync_process(conn, SYNC)
    else:
        conn.close()
        cluster.stop("immediate")
        cluster.start()
    t.join()
    stop.set()
    conn = cluster.connect()
    try:
        assert_table_equals_org(emu, conn)
        # each change at most once in the event stream
        dup = query_rows(
            conn, "SELECT upstream_id, data->>'Title', count(*) FROM salesforce._sync_events"
            " WHERE event = 'updated' AND upstream_id = ANY(%s)"
            " GROUP BY 1, 2 HAVING count(*) > 1", (ids,))
        assert dup == []
    finally:
        conn.close()


def test_without_permission_to_read_the_selection_the_sync_polls_and_says_why(org):
    emu, _, conn = org
    # the integration user loses View Setup and Configuration
    emu.control("PUT", "cdc", {"tooling_access": False})
    conn.execute("SELECT sequin_sf.alter_sync(%s, describe_interval => '2 seconds')", (SYNC,))
    wait_for(lambda: set(sources(conn).values()) == {"polling"}, timeout=30,
             what="every collection back on polling")
    notes = query_rows(conn, "SELECT DISTINCT change_source_note FROM sequin_sf.sync_status")
    assert len(notes) == 1 and "View Setup and Configuration" in notes[0][0], notes
    rid = query_value(conn, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    Rest(emu).update("Contact", rid, {"Title": "Polled again"})
    wait_for(lambda: contact_row(conn, rid)[1] == "Polled again", timeout=30,
             what="a change arriving by polling")


def test_change_event_settings_are_checked(org):
    _, _, conn = org
    for args, message in [
        ("change_events => 'sometimes'", "change_events must be"),
        ("pubsub_endpoint => 'ftp://x'", "is not of the form"),
        ("pubsub_endpoint => 'http://pubsub.example.com:7443'", "clear text"),
        ("reconcile_interval => '10 seconds'", "reconcile_interval must be between"),
    ]:
        with pytest.raises(Exception, match=message):
            conn.execute(f"SELECT sequin_sf.alter_sync('{SYNC}', {args})")
    conn.execute(f"SELECT sequin_sf.alter_sync('{SYNC}', pubsub_endpoint => '')")
    assert query_value(conn, "SELECT pubsub_endpoint FROM sequin_sf.syncs") == \
        "https://api.pubsub.salesforce.com:7443"


def test_a_dropped_stream_reconnects_and_resumes_where_it_was(org):
    emu, _, conn = org
    rest = Rest(emu)
    rid = query_value(conn, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    assert emu.control("POST", "cdc/drop_streams")["dropped"] >= 1
    # a change made while the stream is down comes with the replay after reconnecting
    rest.update("Contact", rid, {"Title": "While dropped"})
    wait_for(lambda: "stream lost" in (query_value(
        conn, "SELECT events_status FROM sequin_sf.syncs") or "")
        or contact_row(conn, rid)[1] == "While dropped", timeout=20, what="the loss noticed")
    wait_for(lambda: contact_row(conn, rid)[1] == "While dropped", timeout=30,
             what="the change made while the stream was down")
    wait_for(lambda: (query_value(conn, "SELECT events_status FROM sequin_sf.syncs") or "")
             .startswith("streaming"), timeout=30, what="streaming again")
    rest.update("Contact", rid, {"Title": "After the drop"})
    wait_for(lambda: contact_row(conn, rid)[1] == "After the drop", timeout=20,
             what="events after reconnecting")
    assert_table_equals_org(emu, conn)


def test_an_event_held_up_by_an_application_lock_is_applied_once_the_lock_goes(org):
    emu, cluster, conn = org
    rest = Rest(emu)
    locked, free = [r[0] for r in query_rows(
        conn, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 2")]
    polls_before = last_polls(conn)
    app = cluster.connect()
    app.autocommit = False
    try:
        # an application transaction holds the row longer than the worker's lock_timeout
        app.execute("SELECT 1 FROM salesforce.contact WHERE id = %s FOR UPDATE", (locked,))
        rest.update("Contact", locked, {"Title": "Behind a lock"})
        rest.update("Contact", free, {"Title": "Next in the stream"})
        time.sleep(5)
        assert contact_row(conn, locked)[1] != "Behind a lock"
        app.commit()
    finally:
        app.close()
    # nothing of the stream was skipped while the batch failed
    wait_for(lambda: contact_row(conn, locked)[1] == "Behind a lock"
             and contact_row(conn, free)[1] == "Next in the stream", timeout=60,
             what="both changes after the lock went")
    # the events brought them (no poll ran), and the error was shown meanwhile
    assert last_polls(conn) == polls_before
    assert_table_equals_org(emu, conn)


def test_events_carry_every_field_type_into_its_column(org):
    emu, _, conn = org
    rest = Rest(emu)
    rid = query_value(conn, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    acct = query_value(conn, "SELECT id FROM salesforce.account ORDER BY id LIMIT 1")
    polls_before = last_polls(conn)
    rest.update("Contact", rid, {"Birthdate": "1984-02-29", "DoNotCall": True,
                                 "MailingCity": "Lyon", "MailingPostalCode": "69001",
                                 "Email": None})
    rest.update("Account", acct, {"NumberOfEmployees": 4321, "AnnualRevenue": 1250000.5})
    wait_for(lambda: query_rows(
        conn, "SELECT birthdate::text, do_not_call, mailing_city, mailing_postal_code, email"
        " FROM salesforce.contact WHERE id = %s", (rid,))
        == [("1984-02-29", True, "Lyon", "69001", None)], timeout=20, what="contact fields")
    wait_for(lambda: query_rows(
        conn, "SELECT number_of_employees, annual_revenue::float8 FROM salesforce.account"
        " WHERE id = %s", (acct,)) == [(4321, 1250000.0)] or query_rows(
        conn, "SELECT number_of_employees, annual_revenue::float8 FROM salesforce.account"
        " WHERE id = %s", (acct,)) == [(4321, 1250000.5)], timeout=20, what="account fields")
    # the address column follows its components (the others kept from the row)
    addr = query_value(conn, "SELECT mailing_address FROM salesforce.contact WHERE id = %s",
                       (rid,))
    org_addr = sf_records(emu, f"SELECT MailingAddress FROM Contact WHERE Id = '{rid}'")[0]
    assert addr == org_addr["MailingAddress"], (addr, org_addr)
    # the row's stamp took the change's LastModifiedDate, as the org has it
    org_row = sf_records(emu, f"SELECT LastModifiedDate, SystemModstamp FROM Contact"
                              f" WHERE Id = '{rid}'")[0]
    got = query_value(conn, "SELECT to_char(system_modstamp AT TIME ZONE 'UTC',"
                      " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+0000\"') FROM salesforce.contact"
                      " WHERE id = %s", (rid,))
    assert got == org_row["LastModifiedDate"]
    assert last_polls(conn) == polls_before

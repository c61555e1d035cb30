"""Change events on a channel of the sync's own (change_events => 'channel'): the sync
creates a custom channel in Salesforce holding exactly its collections (those the user
chose with event_collections), subscribes to it alone, says in sync_status why any
collection is polled instead (the org's limit of 5 entities, a missing permission), and
the channel is deleted in Salesforce when the sync no longer uses it."""

import pytest

from harness import (
    Emulator,
    create_emulator_credential,
    query_rows,
    query_value,
    wait_backfilled,
    wait_for,
)
from test_change_events import Rest

SYNC = "chan"
OBJECTS = ["Account", "Contact", "Opportunity", "Lead", "Case", "Task", "Event", "Campaign"]
CHOSEN = ["Account", "Contact", "Opportunity", "Lead", "Case"]


@pytest.fixture
def emulator():
    """An org that allows 5 entities for change events, with 8 objects of records."""
    emu = Emulator("--pubsub-listen", "127.0.0.1:0", "--pubsub-keepalive-ms", "500",
                   "--cdc-entity-limit", "5", "--seed", "21",
                   "--generate", ",".join(f"{o}=15" for o in OBJECTS))
    yield emu
    emu.stop()


def start(conn, emu, **settings):
    create_emulator_credential(conn, emu)
    conn.execute("SELECT sequin_sf.create_sync(%s, credential => 'emu', collections => %s)",
                 (SYNC, OBJECTS))
    args = ", ".join(f"{k} => %s" for k in settings)
    conn.execute(
        f"SELECT sequin_sf.alter_sync(%s, pubsub_endpoint => %s, reconcile_interval => '1 hour',"
        f" describe_interval => '2 seconds', change_events => 'channel'{', ' if args else ''}{args})",
        (SYNC, "http://" + emu.control("GET", "cdc")["pubsub"], *settings.values()))
    wait_backfilled(conn, SYNC)


def sources(conn):
    return {c: (s, n) for c, s, n in query_rows(
        conn, "SELECT collection, change_source, change_source_note FROM sequin_sf.sync_status"
        " WHERE sync_name = %s", (SYNC,))}


def noted(conn):
    """Every collection's change source has been decided (its note written)."""
    return all(n is not None for _, n in sources(conn).values())


def on_events(conn):
    return sorted(c for c, (s, _) in sources(conn).items() if s == "events")


def tooling(emu, soql):
    rest = Rest(emu)
    return rest.call("GET", "tooling/query?q=" + soql.replace(" ", "+").replace("'", "%27"))["records"]


def channel_members(emu, channel):
    return sorted(r["SelectedEntity"] for r in tooling(
        emu, f"SELECT SelectedEntity FROM PlatformEventChannelMember WHERE EventChannel = '{channel}'"))


def channels(emu):
    return [r["DeveloperName"] for r in tooling(emu, "SELECT DeveloperName FROM PlatformEventChannel")]


def test_the_chosen_collections_get_events_on_the_syncs_channel_and_the_rest_poll(emulator, db):
    start(db, emulator, event_collections=CHOSEN)
    wait_for(lambda: on_events(db) == sorted(CHOSEN) and noted(db)
             and (query_value(db, "SELECT events_status FROM sequin_sf.syncs") or "")
             .startswith("streaming /data/SequinSf_chan_"),
             timeout=60, what="the chosen five on events through the sync's channel")
    channel, chosen = query_rows(db, "SELECT event_channel, event_collections FROM sequin_sf.syncs")[0]
    assert channel.startswith("SequinSf_chan_") and channel.endswith("__chn")
    assert sorted(chosen) == sorted(CHOSEN)
    # in Salesforce: one channel holding exactly the chosen five
    assert channels(emulator) == [channel[:-len("__chn")]]
    assert channel_members(emulator, channel) == sorted(
        f"{o}ChangeEvent" for o in CHOSEN)
    notes = sources(db)
    for o in set(OBJECTS) - set(CHOSEN):
        assert notes[o] == ("polling", "not among the sync's event_collections (alter_sync): polling")
    assert channel in notes["Contact"][1]
    # a change to a chosen collection arrives as an event, without a poll
    polled = query_value(db, "SELECT last_poll_at FROM sequin_sf.sync_status WHERE collection = 'Contact'")
    cid = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    Rest(emulator).update("Contact", cid, {"LastName": "By channel"})
    wait_for(lambda: query_value(db, "SELECT last_name FROM salesforce.contact WHERE id = %s",
                                 (cid,)) == "By channel", timeout=20, what="the event applied")
    assert query_value(db, "SELECT last_poll_at FROM sequin_sf.sync_status"
                       " WHERE collection = 'Contact'") == polled
    # the delivery is counted: in the org's allocation and in the sync's own share
    assert Rest(emulator).call("GET", "limits")["DailyDeliveredPlatformEvents"] == {
        "Max": 50_000, "Remaining": 49_999}
    assert query_rows(db, "SELECT sync_used_24h FROM sequin_sf.org_limits"
                      " WHERE allocation = 'DailyDeliveredPlatformEvents'") == [(1,)]
    # a polled one still follows Salesforce
    tid = query_value(db, "SELECT id FROM salesforce.task ORDER BY id LIMIT 1")
    Rest(emulator).update("Task", tid, {"Subject": "Polled"})
    wait_for(lambda: query_value(db, "SELECT subject FROM salesforce.task WHERE id = %s",
                                 (tid,)) == "Polled", timeout=30, what="the polled change")

    # another choice: the channel follows it
    db.execute("SELECT sequin_sf.alter_sync(%s, event_collections => ARRAY['task', 'Event'])", (SYNC,))
    wait_for(lambda: on_events(db) == ["Event", "Task"], timeout=60, what="the new choice on events")
    assert channel_members(emulator, channel) == ["EventChangeEvent", "TaskChangeEvent"]


def test_past_the_orgs_entity_limit_the_rest_are_polled_and_the_note_says_what_to_do(emulator, db):
    # two entities selected elsewhere in the org (Setup's page) count toward the 5
    emulator.control("PUT", "cdc", {"objects": ["Campaign", "Event"]})
    start(db, emulator)
    # the channel takes members in name order: Account, Campaign, Case, Contact, Event;
    # Campaign and Event count once with their Setup selection, so Lead is the 6th
    # entity and refused, and the sync tries no more after it
    on = ["Account", "Campaign", "Case", "Contact", "Event"]
    wait_for(lambda: on_events(db) == on and noted(db), timeout=60,
             what="five collections on events")
    notes = sources(db)
    polled = sorted(o for o, (s, _) in notes.items() if s == "polling")
    assert polled == ["Lead", "Opportunity", "Task"]
    for o in polled:
        assert "as many objects for Change Data Capture as it may" in notes[o][1], notes[o]
        assert "event_collections" in notes[o][1]
    channel = query_value(db, "SELECT event_channel FROM sequin_sf.syncs")
    assert channel_members(emulator, channel) == sorted(f"{o}ChangeEvent" for o in on)


def test_without_the_permission_every_collection_is_polled_and_the_note_names_it(emulator, db):
    emulator.control("PUT", "cdc", {"tooling_access": False})
    start(db, emulator)
    wait_for(lambda: all(n and "Customize Application" in n for _, (_, n) in sources(db).items()),
             timeout=60, what="the missing permission in every note")
    assert on_events(db) == []
    cid = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    Rest(emulator).update("Contact", cid, {"LastName": "Polled anyway"})
    wait_for(lambda: query_value(db, "SELECT last_name FROM salesforce.contact WHERE id = %s",
                                 (cid,)) == "Polled anyway", timeout=30, what="the polled change")


def test_the_channel_is_deleted_in_salesforce_when_the_sync_is_dropped(emulator, db):
    start(db, emulator, event_collections=["Contact"])
    wait_for(lambda: on_events(db) == ["Contact"], timeout=60, what="Contact on events")
    assert len(channels(emulator)) == 1
    db.execute("SELECT sequin_sf.drop_sync(%s)", (SYNC,))
    wait_for(lambda: channels(emulator) == [], timeout=120, what="the channel deleted")
    assert query_value(db, "SELECT count(*) FROM sequin_sf._event_channels_left") == 0


def test_event_collections_must_name_collections_of_the_sync(emulator, db):
    start(db, emulator)
    with pytest.raises(Exception) as e:
        db.execute("SELECT sequin_sf.alter_sync(%s, event_collections => ARRAY['Contact', 'Widget__c'])",
                   (SYNC,))
    assert "Widget__c" in str(e.value) and "not a collection" in str(e.value)
    assert "Account, Campaign, Case" in str(e.value.diag.message_hint)
    with pytest.raises(Exception) as e:
        db.execute("SELECT sequin_sf.alter_sync(%s, change_events => 'sometimes')", (SYNC,))
    assert "'channel'" in str(e.value)
    # '{}' gives every collection its events again
    db.execute("SELECT sequin_sf.alter_sync(%s, event_collections => ARRAY['contact'])", (SYNC,))
    assert query_value(db, "SELECT event_collections FROM sequin_sf.syncs") == ["Contact"]
    db.execute("SELECT sequin_sf.alter_sync(%s, event_collections => '{}')", (SYNC,))
    assert query_value(db, "SELECT event_collections FROM sequin_sf.syncs") is None


def test_with_few_event_deliveries_left_the_sync_polls_and_says_why(emulator, db):
    # other subscribers took 49,000 of the org's 50,000 daily deliveries: the 2% left is
    # within the 20% the sync leaves to others (org_usage_ceiling 80%)
    emulator.control("PUT", "limits", {"events_delivered_elsewhere": 49_000})
    start(db, emulator, event_collections=["Contact"])
    wait_for(lambda: noted(db) and "daily event deliveries" in sources(db)["Contact"][1],
             timeout=60, what="the note on Contact")
    assert on_events(db) == []
    note = sources(db)["Contact"][1]
    assert "1000 of its 50000 daily event deliveries (DailyDeliveredPlatformEvents)" in note
    assert "polling" in note
    assert "nearly used" in query_value(db, "SELECT events_status FROM sequin_sf.syncs")
    assert query_rows(db, "SELECT max, remaining FROM sequin_sf.org_limits"
                      " WHERE allocation = 'DailyDeliveredPlatformEvents'") == [(50_000, 1_000)]
    cid = query_value(db, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    Rest(emulator).update("Contact", cid, {"LastName": "Polled to spare events"})
    wait_for(lambda: query_value(db, "SELECT last_name FROM salesforce.contact WHERE id = %s",
                                 (cid,)) == "Polled to spare events", timeout=30,
             what="the polled change")

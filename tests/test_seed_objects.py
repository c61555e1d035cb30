"""Every object of the seed list synced from a generated org: backfilled in full, a
change made in Salesforce reaching the table, a delete where the object allows it, and
a write the object does not allow refused at once in Postgres, with a clear error."""

import json
import urllib.parse
import urllib.request

import psycopg
import pytest

from harness import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, query_value, synced_org, wait_for

SEED_OBJECTS = """Account AccountContactRelation Asset Attachment Campaign CampaignMember
CampaignMemberStatus Case CaseHistory Contact ContentDocument ContentNote Contract Event Lead
Note Opportunity OpportunityContactRole OpportunityFieldHistory OpportunityHistory
OpportunityLineItem OpportunityStage Opportunity__hd Order OrderItem Pricebook2 PricebookEntry
Product2 Profile RecordType Task User UserRole WorkOrder""".split()
SYNC = "seed"


@pytest.fixture(scope="module")
def env():
    emulator_args = ("--seed", "8", "--generate", ",".join(f"{o}=4" for o in SEED_OBJECTS))
    with synced_org(emulator_args, SYNC, SEED_OBJECTS, rate_limit_requests=200000) as org:
        emu, _, conn = org
        conn.execute("SELECT sequin_sf.alter_sync(%s, deleted_interval => '1 second')", (SYNC,))
        yield emu, conn, describes(emu)


def access_token(emu):
    """A session for the emulator's API, as a Salesforce client logs in."""
    form = urllib.parse.urlencode({
        "grant_type": "refresh_token", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
    }).encode()
    with urllib.request.urlopen(urllib.request.Request(
            f"{emu.base_url}/services/oauth2/token", data=form), timeout=60) as resp:
        return json.loads(resp.read())["access_token"]


def describes(emu):
    """Each seed object's describe, as a Salesforce client reads it."""
    token = access_token(emu)
    out = {}
    for o in SEED_OBJECTS:
        req = urllib.request.Request(
            f"{emu.base_url}/services/data/v61.0/sobjects/{o}/describe",
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            out[o] = json.loads(resp.read())
    return out


def table_of(conn, obj):
    return query_value(
        conn, "SELECT table_name FROM sequin_sf.sync_status WHERE collection = %s", (obj,))


def column_of(conn, obj, field):
    return query_value(
        conn, "SELECT column_name FROM sequin_sf.columns WHERE collection = %s AND field_name = %s",
        (obj, field))


@pytest.fixture(scope="module")
def changed(env):
    """One change and one delete per object, made in Salesforce all at once (so the
    polls bring them together): {object: (changed id, field, deleted id)}."""
    emu, conn, desc = env
    made = {}
    for obj in SEED_OBJECTS:
        d, table = desc[obj], table_of(conn, obj)
        counted = query_value(conn, f"SELECT count(*) FROM {table}")
        assert counted == emu.stats()["records"][obj], obj
        field = next((f["name"] for f in d["fields"]
                      if f["type"] in ("string", "textarea") and f["updateable"]
                      and not f["calculated"]), None)
        changed_id = deleted_id = None
        if d["updateable"] and field:
            changed_id = query_value(conn, f"SELECT id FROM {table} ORDER BY id LIMIT 1")
            emu.control("PATCH", f"records/{obj}/{changed_id}", {field: "changed in Salesforce"})
        if d["deletable"]:
            deleted_id = query_value(conn, f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1")
            # /deleted refuses objects that are not replicateable, so their hard deletes
            # cannot be seen (README); their soft deletes come through queryAll
            purge = "?purge=true" if d["replicateable"] else ""
            emu.control("DELETE", f"records/{obj}/{deleted_id}{purge}")
        made[obj] = (changed_id, field, deleted_id)
    return made


@pytest.mark.parametrize("obj", SEED_OBJECTS)
def test_seed_object_backfills_and_follows_salesforce(env, changed, obj):
    _, conn, _ = env
    table = table_of(conn, obj)
    assert query_value(
        conn, "SELECT state FROM sequin_sf.sync_status WHERE collection = %s", (obj,)) == "live"
    changed_id, field, deleted_id = changed[obj]
    if changed_id:
        col = column_of(conn, obj, field)
        wait_for(lambda: query_value(conn, f"SELECT {col} FROM {table} WHERE id = %s",
                                     (changed_id,)) == "changed in Salesforce",
                 timeout=120, what=f"the change of {obj}.{field}")
    if deleted_id:
        wait_for(lambda: query_value(conn, f"SELECT count(*) FROM {table} WHERE id = %s",
                                     (deleted_id,)) == 0,
                 timeout=120, what=f"the delete of a {obj} record")
    assert query_value(
        conn, "SELECT last_error FROM sequin_sf.sync_status WHERE collection = %s", (obj,)
    ) is None


@pytest.mark.parametrize("obj", SEED_OBJECTS)
def test_writes_the_object_does_not_allow_are_refused_at_once(env, obj):
    _, conn, desc = env
    d = desc[obj]
    table = table_of(conn, obj)
    refused = {
        "INSERT": not d["createable"],
        "UPDATE": not d["updateable"],
        "DELETE": not d["deletable"],
    }
    if not any(refused.values()):
        pytest.skip(f"the API may create, update and delete {obj} records")
    before = query_value(conn, "SELECT count(*) FROM salesforce._sync_write_log")
    rid = query_value(conn, f"SELECT _row_id FROM {table} ORDER BY id LIMIT 1")
    statements = {
        "INSERT": f"INSERT INTO {table} (id) VALUES (NULL)",
        "UPDATE": f"UPDATE {table} SET id = id WHERE _row_id = {rid}",
        "DELETE": f"DELETE FROM {table} WHERE _row_id = {rid}",
    }
    for op, is_refused in refused.items():
        if not is_refused:
            continue
        with pytest.raises(psycopg.errors.FeatureNotSupported) as info:
            conn.execute(statements[op])
        assert f"Salesforce does not allow {dict(INSERT='creating', UPDATE='updating', DELETE='deleting')[op]} {obj} records" in str(info.value)
    assert query_value(conn, "SELECT count(*) FROM salesforce._sync_write_log") == before


@pytest.mark.parametrize("obj, field", [("Attachment", "Body"), ("ContentNote", "Content")])
def test_base64_fields_hold_the_path_of_their_bytes(env, obj, field):
    """/query answers a base64 field with the path that serves its bytes, and Bulk
    queries refuse it: its column holds that path (the object is backfilled through
    REST), the path serves the bytes, and the column is never written back."""
    emu, conn, _ = env
    table, col = table_of(conn, obj), column_of(conn, obj, field)
    assert query_value(conn, "SELECT backfill_mode FROM sequin_sf.sync_status WHERE collection = %s",
                       (obj,)) == "rest"
    rows = [r for r in conn.execute(f"SELECT id, {col} FROM {table} WHERE id IS NOT NULL").fetchall()]
    assert rows and all(path is not None for _, path in rows)
    for rid, path in rows:
        assert path.startswith("/services/data/v") and path.endswith(f"/sobjects/{obj}/{rid}/{field}")
    req = urllib.request.Request(f"{emu.base_url}{rows[0][1]}",
                                 headers={"Authorization": f"Bearer {access_token(emu)}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200 and len(resp.read()) > 0
    with pytest.raises(psycopg.errors.GeneratedAlways) as info:
        conn.execute(f"UPDATE {table} SET {col} = 'x' WHERE id = %s", (rows[0][0],))
    assert "the sync does not send files" in str(info.value)

"""End to end: an object too wide for one REST query. 800 custom fields with 43-character
names make a field list of about 37 KB: a GET /query naming them all is past the 16,384
bytes Salesforce (and the emulator) take for a request's URI and headers, and is
answered 414. The sync reads such an object in field groups joined on Id, for the
backfill (REST; Bulk takes the whole list in one job's body, within SOQL's 100,000
characters) and for polls."""

import pytest

from harness import (
    create_emulator_credential,
    query_rows,
    query_value,
    sf_records,
    wait_backfilled,
    wait_for,
)

FIELDS = [f"Field_with_a_long_descriptive_name_{i:03}__c" for i in range(800)]
RECORDS = 2500


def value(k, i):
    """Record k's value of field i: about one field in seven is set."""
    return f"v{k}-{i}" if (i + k) % 7 == 0 else None


def wide_emulator(start_emulator):
    emulator = start_emulator("--seed", "3")
    emulator.control("POST", "schema/objects", {"name": "Wide__c", "fields": [
        {"name": f, "type": "string", "length": 40} for f in FIELDS]})
    records = [{"Name": f"W{k}", **{f: value(k, i) for i, f in enumerate(FIELDS)
                                   if value(k, i) is not None}}
               for k in range(RECORDS)]
    for start in range(0, RECORDS, 500):
        emulator.control("POST", "records/Wide__c", records[start:start + 500])
    return emulator


def salesforce_rows(emulator):
    """Every record's Name and 800 fields as a client reads them from the REST API:
    100 fields a query, joined on Id."""
    rows = {}
    for start in range(0, len(FIELDS), 100):
        group = FIELDS[start:start + 100]
        for r in sf_records(emulator, f"SELECT Id, Name, {', '.join(group)} FROM Wide__c"):
            rows.setdefault(r["Id"], {"Name": r["Name"]}).update({f: r[f] for f in group})
    return rows


def table_rows(db):
    cols = dict(query_rows(
        db, "SELECT field_name, column_name FROM sequin_sf.columns"
        " WHERE sync_name = 'emu' AND collection = 'Wide__c' AND active"))
    names = ["Id", "Name", *FIELDS]
    assert set(names) <= set(cols), sorted(set(names) - set(cols))[:5]
    select = ", ".join(f'"{cols[n]}"' for n in names)
    out = {}
    for row in query_rows(db, f"SELECT {select} FROM salesforce.wide__c"):
        out[row[0]] = dict(zip(names[1:], row[1:]))
    return out


@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_an_800_field_object_is_read_in_field_groups(start_emulator, cluster, path):
    emulator = wide_emulator(start_emulator)
    db = cluster.connect()
    cluster.install(db)
    create_emulator_credential(db, emulator)
    db.execute(
        "SELECT sequin_sf.create_sync('emu', credential => 'emu', collections => %s,"
        " rate_limit_requests => 100000, bulk_threshold => %s)",
        (["Wide__c"], 1 if path == "bulk" else 50000))
    wait_backfilled(db, "emu")
    status = query_rows(db, "SELECT backfill_mode, last_error FROM sequin_sf.sync_status")
    assert status == [(path, None)], status
    want = salesforce_rows(emulator)
    assert len(want) == RECORDS
    assert table_rows(db) == want

    # changes reach the table through polls read in field groups too: fields of the
    # first, a middle and the last group, a record cleared, one deleted
    ids = sorted(want)
    emulator.control("PATCH", f"records/Wide__c/{ids[0]}",
                     {FIELDS[0]: "first", FIELDS[400]: "middle", FIELDS[799]: "last"})
    emulator.control("PATCH", f"records/Wide__c/{ids[1]}",
                     {f: None for f in FIELDS if value(1, FIELDS.index(f)) is not None})
    emulator.control("DELETE", f"records/Wide__c/{ids[2]}")
    wait_for(lambda: query_value(
        db, "SELECT count(*) FROM salesforce.wide__c WHERE id = %s", (ids[2],)) == 0,
        what="the deletion polled")
    want = salesforce_rows(emulator)
    assert want[ids[0]][FIELDS[799]] == "last"
    wait_for(lambda: table_rows(db) == want, what="the polled changes in every column")
    assert query_value(db, "SELECT last_error FROM sequin_sf.sync_status") is None

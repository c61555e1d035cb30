"""End to end: archived activities. Salesforce archives old Task and Event records
(IsArchived = true); `query` (REST /query, Bulk "query" jobs) leaves them out and only
`queryAll` returns them. The backfill of Task and Event reads through queryAll (REST
pages, Id ranges and Bulk "queryAll" jobs) without soft-deleted records, so the tables
hold archived activities too; polls read through queryAll, so later edits of archived
rows arrive."""

import pytest

from harness import create_emulator_credential, query_rows, query_value, sf_records, wait_backfilled, wait_for
from test_read_sync import norm, pg_snapshot

FIELDS = ["Id", "Subject", "IsArchived", "SystemModstamp"]

# (Task count, create_sync arguments): REST keyset pages, REST Id ranges read side by
# side (4 requests in flight, 8,000 rows or more), and a Bulk 2.0 job
PATHS = {
    "rest": (300, "bulk_threshold => 1000000000"),
    "ranges": (9000, "bulk_threshold => 1000000000, max_concurrent_requests => 4"),
    "bulk": (300, "bulk_threshold => 1"),
}


def kept_snapshot(emulator, obj):
    """What a table of `obj` must hold: every record queryAll returns but deleted ones."""
    recs = sf_records(emulator, f"SELECT {', '.join(FIELDS)} FROM {obj} WHERE IsDeleted = false",
                      query_all=True)
    return {r["Id"]: tuple(norm(r[f]) for f in FIELDS) for r in recs}


def ids_of(emulator, obj):
    return [r["Id"] for r in sf_records(emulator, f"SELECT Id FROM {obj} ORDER BY Id")]


@pytest.mark.parametrize("path", list(PATHS))
def test_archived_activities_are_backfilled_and_their_edits_polled(start_emulator, cluster, path):
    tasks, args = PATHS[path]
    emulator = start_emulator("--seed", "21", "--generate",
                              f"Account=10,Contact=20,Task={tasks},Event=200")
    task_ids, event_ids = ids_of(emulator, "Task"), ids_of(emulator, "Event")
    # archived rows spread over the Id space (first, middle, last), and deleted ones:
    # one plain, one archived
    archived_tasks = [task_ids[0], task_ids[len(task_ids) // 2], task_ids[-1]] + task_ids[7:40:8]
    archived_events = event_ids[::25]
    for obj, ids in (("Task", archived_tasks), ("Event", archived_events)):
        for i in ids:
            emulator.control("POST", f"records/{obj}/{i}/archive")
    deleted_tasks = [task_ids[3], archived_tasks[3]]
    for i in deleted_tasks:
        emulator.control("DELETE", f"records/Task/{i}")
    # query would miss them: that is the point
    live = set(ids_of(emulator, "Task"))
    assert not live & set(archived_tasks)
    assert len(live) == tasks - len(archived_tasks) - 1

    db = cluster.connect()
    cluster.install(db)
    create_emulator_credential(db, emulator)
    db.execute("SELECT sequin_sf.create_sync('emu', credential => 'emu',"
               " collections => ARRAY['Task', 'Event'], rate_limit_requests => 100000, "
               + args + ")")
    wait_backfilled(db, "emu")
    modes = dict(query_rows(db, "SELECT collection, backfill_mode FROM sequin_sf.sync_status"))
    assert set(modes.values()) == {"bulk" if path == "bulk" else "rest"}, modes
    if path == "ranges":
        assert "(range 4 of 4)" in cluster.sync_log()

    for obj, archived in (("Task", archived_tasks), ("Event", archived_events)):
        want = kept_snapshot(emulator, obj)
        got = pg_snapshot(db, "emu", obj, FIELDS)
        assert got == want, obj
        assert all(got[i][2] is True for i in archived if i not in deleted_tasks), obj
    total = tasks - len(deleted_tasks)
    assert query_value(db, "SELECT count(*) FROM salesforce.task") == total
    assert query_value(db, "SELECT count(*) FROM salesforce.task WHERE is_archived") == \
        len(archived_tasks) - 1
    assert query_value(db, "SELECT count(*) FROM salesforce.task WHERE id = ANY(%s)",
                       (deleted_tasks,)) == 0
    status = dict(((c, (d, t)) for c, d, t in query_rows(
        db, "SELECT collection, rows_done, rows_total FROM sequin_sf.sync_status")))
    assert status["Task"] == (total, total) and status["Event"] == (200, 200), status
    assert query_value(db, "SELECT count(*) FROM sequin_sf.sync_status WHERE last_error IS NOT NULL") == 0

    # an archived row edited later arrives by polling (it stays archived); an archived
    # row deleted later leaves the table
    edited_task, edited_event, gone_event = archived_tasks[1], archived_events[1], archived_events[2]
    emulator.control("PATCH", f"records/Task/{edited_task}", {"Subject": "Edited after archiving"})
    emulator.control("PATCH", f"records/Event/{edited_event}", {"Subject": "Moved after archiving"})
    emulator.control("DELETE", f"records/Event/{gone_event}")
    wait_for(lambda: query_value(db, "SELECT subject FROM salesforce.task WHERE id = %s",
                                 (edited_task,)) == "Edited after archiving", what="edited archived task")
    wait_for(lambda: query_value(db, "SELECT subject FROM salesforce.event WHERE id = %s",
                                 (edited_event,)) == "Moved after archiving", what="edited archived event")
    wait_for(lambda: query_value(db, "SELECT count(*) FROM salesforce.event WHERE id = %s",
                                 (gone_event,)) == 0, what="deleted archived event")
    assert query_value(db, "SELECT is_archived FROM salesforce.task WHERE id = %s", (edited_task,)) is True
    for obj in ("Task", "Event"):
        assert pg_snapshot(db, "emu", obj, FIELDS) == kept_snapshot(emulator, obj), obj
    db.close()

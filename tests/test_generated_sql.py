"""The SQL sync-core generates (crates/sync-core/examples/generated_sql.rs prints it for a
sample mapping) executed against a real Postgres: the table it creates, the statement
that applies a page of records (upserts, soft deletes, events with prior values), and
the one that removes hard-deleted records. sync-core's own tests only read the text."""

import json
import os
import subprocess

from psycopg import sql as psql

from harness import ROOT, query_rows, query_value

# where cargo builds it (CARGO_TARGET_DIR, as cargo itself reads it)
EXAMPLE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                       "release", "examples", "generated_sql")


def generated():
    if not os.path.exists(EXAMPLE):
        subprocess.run(
            ["cargo", "build", "-q", "--release", "-p", "sync-core", "--example", "generated_sql"],
            cwd=ROOT, check=True,
        )
    return json.loads(subprocess.run([EXAMPLE], check=True, capture_output=True, text=True).stdout)


def run(conn, sql, arg, arg_type="text"):
    """Runs a generated statement, whose one parameter is $1."""
    conn.execute("DEALLOCATE ALL")
    conn.execute(f"PREPARE stmt({arg_type}) AS {sql}")
    # EXECUTE takes no bound parameters: the argument goes in as a quoted literal
    return query_rows(conn, psql.SQL("EXECUTE stmt({}::{})").format(
        psql.Literal(arg), psql.SQL(arg_type)))[0]


def record(id_, name, stamp, deleted=False, **extra):
    return {"attributes": {"type": "Contact"}, "Id": id_, "LastName": name,
            "Birthdate": "1990-04-05", "Amount__c": 12.5,
            "MailingAddress": {"city": "Paris", "country": "France"},
            "IsDeleted": deleted, "SystemModstamp": stamp, **extra}


def test_generated_statements_run_and_do_what_they_say(db):
    sql = generated()
    db.execute("CREATE SCHEMA gen")
    db.execute("SELECT sequin_sf._create_sync_objects('gen', 'gen')")
    for stmt in sql["create_table"]:
        db.execute(stmt)
    db.execute(sql["add_column"])
    assert query_value(
        db, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'gen'"
        " AND table_name = 'contact' AND column_name = 'level__c'"
    ) == 1

    a = "003000000000001AAA"
    b = "003000000000002AAA"
    page = [record(a, "Ada", "2026-01-01T00:00:00.000+0000"),
            record(b, "Bob", "2026-01-01T00:00:00.000+0000")]
    assert run(db, sql["apply_page"], json.dumps(page)) == (2, 0, 2)
    assert query_rows(
        db, "SELECT id, last_name, birthdate::text, amount__c::text, mailing_address ->> 'city'"
        " FROM gen.contact ORDER BY id"
    ) == [(a, "Ada", "1990-04-05", "12.5", "Paris"), (b, "Bob", "1990-04-05", "12.5", "Paris")]

    # the same page again changes nothing; a newer version updates and says what changed;
    # a record flagged deleted goes
    assert run(db, sql["apply_page"], json.dumps(page)) == (0, 0, 0)
    newer = [record(a, "Lovelace", "2026-01-02T00:00:00.000+0000"),
             record(b, "Bob", "2026-01-02T00:00:00.000+0000", deleted=True)]
    assert run(db, sql["apply_page"], json.dumps(newer)) == (1, 1, 2)
    events = query_rows(
        db, "SELECT upstream_id, event, previous_data FROM gen._sync_events ORDER BY seq"
    )
    assert [(e[0], e[1]) for e in events] == [(a, "inserted"), (b, "inserted"),
                                               (a, "updated"), (b, "deleted")]
    assert events[2][2]["LastName"] == "Ada"
    assert query_value(db, "SELECT count(*) FROM gen.contact") == 1

    # the backfill form writes rows without events
    assert run(db, sql["apply_page_quiet"], json.dumps(
        [record("003000000000003AAA", "Cy", "2026-01-03T00:00:00.000+0000")])) == (1, 0, 0)
    assert query_value(db, "SELECT count(*) FROM gen._sync_events") == 4

    # hard deletes: the rows go, each with a deleted event holding its last values
    assert run(db, sql["delete_ids"], [a, "003000000000003AAA"], "text[]") == (2, 2)
    assert query_value(db, "SELECT count(*) FROM gen.contact") == 0
    assert query_value(
        db, "SELECT data ->> 'LastName' FROM gen._sync_events WHERE event = 'deleted'"
        " AND upstream_id = %s", (a,)
    ) == "Lovelace"

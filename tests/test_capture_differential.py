"""Write capture, differentially: a seeded random generator of transactions runs every
statement against synced tables (capture installed by hand from catalog rows, as
tests/sql/capture.sql does) and against identical plain tables, in the same transaction.
Afterwards the write log (batches unpacked with _write_expand_batches, as the worker
does), replayed in id order onto the synced tables' starting rows, must give exactly the
plain tables' final rows, and every entry's `previous` must be the replayed row before it.

The replay cannot be satisfied by a log that missed, duplicated, reordered or leaked a
change (test_the_replay_fails_on_a_tampered_log tampers with a log each of these ways):
  * an insert entry carries no values (the writer reads them from the row when it sends
    it), so the replay takes the row as the generator inserted it: every key is inserted
    at most once, by a statement whose values the generator chose and recorded (keys are
    never reused; ON CONFLICT and MERGE take the insert path for fresh keys only). The
    key of the entry's _row_id is read from the final table or from an entry's
    `previous`; an insert whose row has neither (inserted by a rolled-back savepoint, or
    deleted without a delete entry) fails;
  * an update or delete must find its row alive, and its `previous` must hold every
    column of the table and equal the replayed row on every sent column: a missed,
    duplicated or reordered change of a row makes the next entry of that row, or the
    final comparison, differ;
  * an update's `values` holds only sent, updateable columns, each with a value the row
    did not have: a change is a value stored differently (README, "What counts as a
    change": numeric 1.5 made 1.500 is one, `x = x` or `n = n + 0` is none), and an
    update that changes no sent column makes no entry (only unsent columns: none);
  * every entry is `new`, with no message (an unreadable kept row would be `failed`);
  * at the end the replayed rows equal the synced table's by _row_id (no change of the
    table escaped the log) and the plain table's by key (capture changed nothing of
    what the statements did).

Statements: INSERT (VALUES and SELECT), COPY FROM STDIN, UPDATE (per-row values and
NULLs, the same value, predicates over many rows, unsent columns only), DELETE, MERGE
(insert, update, delete and do-nothing arms), INSERT ... ON CONFLICT DO UPDATE / DO
NOTHING, data-modifying CTEs (delete, update and insert of one table in one statement),
changes Salesforce's rules refuse (read-only columns, a restricted picklist, _row_id,
TRUNCATE; on the synced table only, in a savepoint, up to 2,500 rows), ALTER TABLE of a
synced table in the transaction with capture installed again; savepoints released or
rolled back (nested), transactions rolled back, aborted by an error or failing at COMMIT
(a deferred constraint trigger), transactions of many one-row statements (entries beyond
a transaction's 100th are batched), transactions mixing both tables; an application's
AFTER ROW trigger (STAMP) that updates the row it fired for whenever a statement sets
its note to 'stamp', so that the trigger's statement is captured before the one that
fired it (src/capture/nested.rs orders them); 1 to 5,000 rows per
statement, mostly few; TimeZone and DateStyle changed per transaction, some run with
session_replication_role = replica (capture fires ALWAYS); the worker's
unpacking of batches run from another session at random points, mid-transaction
included. Columns: text (unicode, JSON escapes, TOAST-sized values stored out of line,
compressed in line, or both), numeric (scales, NaN, infinities), integer, bigint,
boolean, timestamptz, date, time, jsonb, NULLs; a dropped column and one added with a
default after rows existed (kept rows with fewer attributes than the table).

SEQUIN_SF_SEED=N runs seed N (else a new one each run, printed on failure);
SEQUIN_SF_LONG=1 runs the long variant too. A seed that ever fails goes into
REGRESSION_SEEDS; one that fails on a capture bug not fixed yet into CAPTURE_BUG_SEEDS,
which, with the capture bug cases at the end, run with SEQUIN_SF_CAPTURE_BUGS=1.
"""

import hashlib
import itertools
import json
import os
import random
import time
from datetime import datetime, timezone
from decimal import Decimal
from functools import partial

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import set_json_loads

from harness import Cluster, query_rows, query_value, sequin_sf_cli

# (seed, transactions): seeds that once failed, kept as regression cases. A seed replays
# the failure only with the generator that found it; later it is one more seed.
REGRESSION_SEEDS = [
    # found mistakes of this test as it was written, none of capture: a '%' taken for a
    # placeholder; TRUNCATE refused by Postgres (55006, the poison trigger's pending
    # events) before capture's trigger could; numeric 1.5 made 1.500 expected to be no
    # change (capture logs a value stored differently, README)
    (1, 40),
]
# (seed, transactions): seeds failing on capture bugs not fixed yet (see the report of
# each in its comment); SEQUIN_SF_CAPTURE_BUGS=1 runs them
CAPTURE_BUG_SEEDS = []

NORMAL_TRANSACTIONS = 250
LONG_TRANSACTIONS = 3000

# -------------------------------------------------------------------------------------
# The tables. Each synced table has a plain twin with the same columns (and the same
# history of dropped and added columns) in <schema>_plain.

PICKLIST = ["Gold", "Silver", "Bronze ✓", "x$body$; SELECT 1; $body$"]

# column -> (Salesforce field, sf_type, pg type, createable, updateable, calculated)
ACCT_FIELDS = {
    "id": ("Id", "id", "text", False, False, False),
    "k": ("External_Key__c", "string", "text", True, False, False),
    "name": ("Name", "string", "text", True, True, False),
    "amount": ("Amount__c", "double", "numeric", True, True, False),
    "qty": ("Qty__c", "int", "integer", True, True, False),
    "active": ("Active__c", "boolean", "boolean", True, True, False),
    "seen_at": ("Seen_At__c", "datetime", "timestamptz", True, True, False),
    "due": ("Due__c", "date", "date", True, True, False),
    "body": ("Body__c", "textarea", "text", True, True, False),
    "level__c": ("Level__c", "picklist", "text", True, True, False),
    "score__c": ("Score__c", "double", "numeric", False, False, True),
    "system_modstamp": ("SystemModstamp", "datetime", "timestamptz", False, False, False),
}
ITEM_FIELDS = {
    "id": ("Id", "id", "text", False, False, False),
    "k": ("External_Key__c", "string", "text", True, False, False),
    "title": ("Title__c", "textarea", "text", True, True, False),
    "n": ("N__c", "double", "numeric", True, True, False),
    "flag": ("Flag__c", "boolean", "boolean", True, True, False),
    "alarm": ("Alarm__c", "time", "time", True, True, False),
    "big": ("Big__c", "long", "bigint", True, True, False),
    "meta": ("Meta__c", "address", "jsonb", False, False, False),
    "added": ("Added__c", "string", "text", True, True, False),
}

TABLES = {
    "acct": {
        "object": "Account",
        "fields": ACCT_FIELDS,
        # what the generator writes: the createable, updateable columns
        "writable": ["name", "amount", "qty", "active", "seen_at", "due", "body", "level__c"],
        "unsent": ["note"],
        "long": ["body"],
    },
    "item": {
        "object": "Item__c",
        "fields": ITEM_FIELDS,
        "writable": ["title", "n", "flag", "alarm", "big", "added"],
        "unsent": ["note"],
        "long": ["title"],
    },
}

POISON = "☠ fails at commit"


def table_ddl(schema, table):
    """The table's DDL up to its starting rows; `after_start_ddl` follows them."""
    if table == "acct":
        return f"""
        CREATE TABLE {schema}.acct (
            _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text UNIQUE, k text NOT NULL UNIQUE, name text, amount numeric, qty integer,
            active boolean, seen_at timestamptz, due date, body text, level__c text,
            score__c numeric, system_modstamp timestamptz, note text, _write_state text);
        CREATE CONSTRAINT TRIGGER poison AFTER INSERT OR UPDATE ON {schema}.acct
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}_plain.poison();
        """
    return f"""
        CREATE TABLE {schema}.item (
            _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text UNIQUE, k text NOT NULL UNIQUE, title text, gone text, n numeric,
            flag boolean, alarm time, big bigint, meta jsonb, note text, _write_state text);
        """


def after_start_ddl(schema, table):
    """Rows from before an ADD COLUMN (fewer attributes than the table) and a dropped
    column's bytes in every older row: what kept rows before must read back right."""
    if table == "item":
        return f"""
        ALTER TABLE {schema}.item DROP COLUMN gone;
        ALTER TABLE {schema}.item ADD COLUMN added text DEFAULT 'dflt';
        """
    return ""


def setup_sql(schema):
    plain = f"{schema}_plain"
    out = [
        f"CREATE SCHEMA {schema}; CREATE SCHEMA {plain};",
        f"""CREATE FUNCTION {plain}.poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.name = '{POISON}' THEN
                    RAISE EXCEPTION 'poisoned row %', NEW.k USING ERRCODE = 'P0001';
                END IF;
                RETURN NULL;
            END $$;""",
        f"""INSERT INTO sequin_sf._credentials (name, kind, login_url, client_id, secret)
            VALUES ('{schema}', 'refresh_token', 'https://login.example.com', 'id', '\\x00');
            INSERT INTO sequin_sf._syncs (name, credential, schema_name, rate_limit_requests,
                                          rate_limit_interval, max_concurrent_requests)
            VALUES ('{schema}', '{schema}', '{schema}', 100, '1 day', 1);""",
    ]
    for table, spec in TABLES.items():
        out.append(
            f"INSERT INTO sequin_sf._collections (sync_name, object_name, table_name, state)"
            f" VALUES ('{schema}', '{spec['object']}', '{table}', 'live');"
        )
        for pos, (col, (field, sf_type, pg_type, create, update, calc)) in enumerate(
            spec["fields"].items()
        ):
            restricted = col == "level__c"
            picks = (
                "ARRAY[" + ", ".join(quote(p) for p in PICKLIST) + "]" if restricted else "NULL"
            )
            out.append(
                "INSERT INTO sequin_sf._columns (sync_name, object_name, field_name,"
                " column_name, sf_type, pg_type, createable, updateable, calculated,"
                " restricted_picklist, picklist_values, position)"
                f" VALUES ('{schema}', '{spec['object']}', '{field}', '{col}', '{sf_type}',"
                f" '{pg_type}', {create}, {update}, {calc}, {restricted}, {picks}, {pos});"
            )
        out.append(table_ddl(schema, table))
        out.append(table_ddl(plain, table).replace(f"{plain}_plain.", f"{plain}."))
    return "\n".join(out)


def quote(s):
    return "'" + s.replace("'", "''") + "'"


def shrunk(text):
    """A text value as capdiff_shrink leaves it: over 200 characters, its md5."""
    if text is None or len(text) <= 200:
        return text
    return "md5:" + hashlib.md5(text.encode()).hexdigest()


def rowset(alias, names, columns):
    """Rows given as text, one list per column, as a FROM item `alias` of text columns
    `names`, and its parameter (a JSON document: far cheaper to send than arrays)."""
    doc = json.dumps([dict(zip(names, values)) for values in zip(*columns)],
                     ensure_ascii=False)
    return f"json_to_recordset(%s::json) AS {alias}({', '.join(n + ' text' for n in names)})", doc


# -------------------------------------------------------------------------------------
# Values, as text (every statement casts its parameters in SQL, so special values such
# as NaN or infinity travel as any other).

UNICODE = [
    "Zoë", "東京", "😀👍🏽", "עברית", "e\u0301", "ß", "İ", "Ωmega", "\u200b", "ﬁ", "𝔘𝔫𝔦",
    '"quoted"', "back\\slash", "tab\there", "new\nline", "ctl\x01\x1f", "{}", "[1]", "null",
    "'single'", "%s", "$1", "", " ",
]
WORDS = ["alpha", "beta", "gamma", "delta", "Acme", "Globex", "Initech", "Umbrella"]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Europe/Berlin",
         "America/St_Johns", "Australia/Lord_Howe"]
DATESTYLES = ["ISO, MDY", "SQL, DMY", "German", "Postgres, YMD"]
OFFSETS = ["Z", "+00:00", "+05:30", "-03:30", "+13:45", "-11:00", "+01:00"]


class Values:
    def __init__(self, rng):
        self.rng = rng

    def note(self):
        """Text, or now and then 'stamp', which fires the tables' row trigger STAMP."""
        return "stamp" if self.rng.random() < 0.03 else self.text()

    def text(self):
        r = self.rng
        parts = [r.choice(WORDS) if r.random() < 0.6 else r.choice(UNICODE)
                 for _ in range(r.randint(1, 6))]
        return r.choice([" ", "", "-", "·"]).join(parts)

    def long_text(self):
        r = self.rng
        kind = r.random()
        if kind < 0.4:  # incompressible: stored out of line as it is
            n = r.randint(2100, 9000)
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éß東😀"
            return "".join(r.choices(alphabet, k=n))
        if kind < 0.8:  # compressible: compressed in line
            return (self.text() + "|") * r.randint(300, 2000)
        # large and compressible only so far: compressed and out of line
        chunk = "".join(r.choices("abcdefghij", k=4000))
        return chunk * r.randint(8, 20)

    def numeric(self):
        r = self.rng
        x = r.random()
        if x < 0.02:
            return r.choice(["NaN", "Infinity", "-Infinity"])
        if x < 0.1:
            return r.choice(["0", "-0", "0.000", "1.50", "1.5", "1e20", "-1E-20",
                             "123456789012345678901234567890.123456789"])
        scale = r.randint(0, 6)
        return str(Decimal(r.randint(-10**9, 10**9)).scaleb(-scale))

    def integer(self):
        return str(self.rng.randint(-10**6, 10**6))

    def bigint(self):
        return str(self.rng.randint(-4 * 10**18, 4 * 10**18))

    def boolean(self):
        return self.rng.choice(["true", "false"])

    def timestamptz(self):
        r = self.rng
        if r.random() < 0.02:
            return r.choice(["infinity", "-infinity"])
        t = datetime(1950, 1, 1, tzinfo=timezone.utc).timestamp() + r.random() * 4e9
        d = datetime.fromtimestamp(t, timezone.utc)
        us = f".{d.microsecond:06d}" if r.random() < 0.7 else ""
        return d.strftime("%Y-%m-%dT%H:%M:%S") + us + r.choice(OFFSETS)

    def date(self):
        r = self.rng
        if r.random() < 0.02:
            return r.choice(["infinity", "-infinity"])
        return f"{r.randint(1900, 2200):04d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"

    def time(self):
        r = self.rng
        return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}" + (
            f".{r.randint(0, 999999):06d}" if r.random() < 0.5 else "")

    def picklist(self):
        return self.rng.choice(PICKLIST)

    def column(self, table, col):
        """A value for `col` (None is NULL)."""
        r = self.rng
        if r.random() < 0.12:
            return None
        if col in TABLES[table]["long"]:
            x = r.random()
            return self.long_text() if x < 0.08 else self.text()
        kind = {
            "name": self.text, "note": self.note, "added": self.text,
            "amount": self.numeric, "n": self.numeric, "qty": self.integer, "big": self.bigint,
            "active": self.boolean, "flag": self.boolean, "seen_at": self.timestamptz,
            "due": self.date, "alarm": self.time, "level__c": self.picklist,
        }[col]
        return kind()


def pg_type(table, col):
    if col == "note":
        return "text"
    return TABLES[table]["fields"][col][2]


# An expression giving a column the value it has, stored the same: no change, no entry.
# (A value stored differently is a change even when the type's equality calls it equal:
# numeric 1.5 made 1.500 is logged, README "What counts as a change"; CHANGE has those.)
SAME = {
    "text": "{c} || ''",
    "numeric": "{c} + 0",
    "integer": "{c} + 0",
    "bigint": "{c} + 0",
    "boolean": "NOT NOT {c}",
    "timestamptz": "{c} + interval '0 seconds'",
    "date": "{c} + 0",
    "time": "{c} + interval '0 seconds'",
}
# Expressions changing a value (or not: NULL stays NULL, infinity + 1 is infinity).
CHANGE = {
    "text": ["{c} || 'ü'", "upper({c})", "left({c}, 3)", "'fixed ✓'"],
    "numeric": ["{c} + 1.5", "-{c}", "round({c}, 1)", "{c} * 2", "{c} * 1.000",
                "round({c}, 12)"],
    "integer": ["{c} + 1", "-{c}", "{c} / 2"],
    "bigint": ["{c} + 1", "-{c}", "{c} / 3"],
    "boolean": ["NOT {c}", "true", "{c} IS NULL"],
    "timestamptz": ["{c} + interval '1 day'", "{c} - interval '1 hour 0.5 seconds'",
                    "date_trunc('day', {c})"],
    "date": ["{c} + 1", "{c} - 31"],
    "time": ["{c} + interval '1 minute'", "'00:00'::time"],
}


# -------------------------------------------------------------------------------------
# The generator


class Fail(AssertionError):
    pass


class Run:
    """One seed's run: the generator, then the replay."""

    def __init__(self, cluster, dbname, schema, seed, transactions, start_rows=(250, 700)):
        self.seed = seed
        self.start_size = start_rows  # starting rows of acct per phase; item has half
        self.transactions = transactions
        self.rng = random.Random(seed)
        self.v = Values(self.rng)
        self.schema = schema
        self.plain = f"{schema}_plain"
        self.conn = cluster.connect(dbname=dbname)
        self.expander = cluster.connect(dbname=dbname)
        for c in (self.conn, self.expander):
            # a capture that hangs fails the test instead
            c.execute("SET lock_timeout = '60s'")
            c.execute("SET statement_timeout = '300s'")
        self.key_counter = itertools.count()
        # table -> key -> (columns, values as text): how each key was (to be) inserted
        self.candidates = {t: {} for t in TABLES}
        self.keys = {t: [] for t in TABLES}  # keys live in the plain table (at txn start)
        self.history = []  # per transaction: (log id after it, [statement descriptions])
        self.stats = {}
        self.current = None
        self.savepoints = itertools.count()
        self.candidate_cache = {}

    def close(self):
        self.conn.close()
        self.expander.close()

    def count(self, what, n=1):
        self.stats[what] = self.stats.get(what, 0) + n

    def name(self, table, synced):
        return f"{self.schema if synced else self.plain}.{table}"

    def new_key(self, table):
        r = self.rng
        suffix = r.choice(["", "", "-ü", "-東", " x", "-😀"])
        return f"{table[0]}{self.seed % 1000:03d}-{next(self.key_counter):07d}{suffix}"

    def rows_per_statement(self):
        x = self.rng.random()
        if x < 0.65:
            return self.rng.randint(1, 3)
        if x < 0.92:
            return self.rng.randint(4, 100)
        if x < 0.985:
            return self.rng.randint(101, 1000)
        return self.rng.randint(1001, 5000)

    # --- setup -----------------------------------------------------------------------

    def setup(self):
        c = self.conn
        c.execute(setup_sql(self.schema))
        for schema in (self.schema, self.plain):
            c.execute(STAMP.format(s=schema))
        # starting rows, as the worker applies a backfill: not captured
        for table in TABLES:
            for phase in (0, 1):
                lo, hi = self.start_size if table == "acct" else [n // 2 for n in self.start_size]
                rows = [self.start_row(table, phase) for _ in range(self.rng.randint(lo, hi))]
                cols = list(rows[0])
                for synced in (True, False):
                    with c.transaction():
                        c.execute("SET LOCAL sequin_sf.applying = on")
                        self.insert_text_rows(self.name(table, synced), table, cols,
                                              [[r[col] for col in cols] for r in rows])
                if phase == 0:
                    for synced in (True, False):
                        ddl = after_start_ddl(self.schema if synced else self.plain, table)
                        if ddl:
                            c.execute(ddl)
            c.execute(f"SELECT sequin_sf._install_capture('{self.schema}', '{table}')")
            c.execute(f"UPDATE sequin_sf._collections SET table_oid = '{self.schema}.{table}'::regclass"
                      f" WHERE sync_name = '{self.schema}' AND table_name = '{table}'")
        assert query_value(c, f"SELECT count(*) FROM {self.schema}._sync_write_log") == 0

    def column_types(self, table):
        return dict(query_rows(self.conn, "SELECT attname, format_type(atttypid, atttypmod)"
                                          " FROM pg_attribute WHERE attrelid = %s::regclass"
                                          " AND attnum > 0 AND NOT attisdropped",
                               [f"{self.schema}.{table}"]))

    def read_start_rows(self):
        """The synced tables' rows before the first transaction, where the replay starts."""
        self.start_rows = {}
        set_json_loads(partial(json.loads, parse_float=Decimal), self.conn)
        for table in TABLES:
            types = self.column_types(table)
            self.start_rows[table] = {
                rid: {c: canon(types[c], j.get(c)) for c in TABLES[table]["fields"]}
                for rid, j in query_rows(
                    self.conn, f"SELECT _row_id, {self.shrink_sql().format(j='to_jsonb(t)')}"
                               f" FROM {self.schema}.{table} t")}
        set_json_loads(json.loads, self.conn)

    def start_row(self, table, phase):
        row = {"id": "001" + "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
                                     for _ in range(15)),
               "k": self.new_key(table)}
        for col in TABLES[table]["writable"] + ["note"]:
            if col == "added" and phase == 0:
                continue
            row[col] = self.v.column(table, col)
        if table == "acct":
            row["score__c"] = self.v.numeric()
            row["system_modstamp"] = self.v.timestamptz()
        else:
            if phase == 0:
                row["gone"] = self.v.text()
            row["meta"] = self.rng.choice([
                None, '{"street": "1 Main St", "city": "Zürich", "n": 1.50}',
                '{"lat": 47.3769, "lon": 8.5417, "tags": ["a", null, true]}', '[]', '"s"', '3'])
        return row

    def insert_text_rows(self, target, table, cols, rows):
        """INSERT ... SELECT of rows given as text, cast to the columns' types."""
        if not rows:
            return 0
        casts = ", ".join(f"{c}::{self.type_of(table, c)}" for c in cols)
        source, doc = rowset("s", cols, [[row[i] for row in rows] for i in range(len(cols))])
        cur = self.conn.execute(
            f"INSERT INTO {target} ({', '.join(cols)}) SELECT {casts} FROM {source}", [doc])
        return cur.rowcount

    def type_of(self, table, col):
        if col == "gone":
            return "text"
        if col == "meta":
            return "jsonb"
        return pg_type(table, col)

    # --- running ---------------------------------------------------------------------

    def both(self, kind, table, sql, params=(), copy_rows=None):
        """Runs a statement on the synced table, then on its plain twin (or the other
        way round): both must succeed and change as many rows."""
        self.count(kind)
        order = [True, False] if self.rng.random() < 0.5 else [False, True]
        counts = {}
        for synced in order:
            text = sql.format(t=self.name(table, synced))
            try:
                if copy_rows is not None:
                    with self.conn.cursor() as cur:
                        with cur.copy(text) as cp:
                            for row in copy_rows:
                                cp.write_row(row)
                        counts[synced] = cur.rowcount
                else:
                    counts[synced] = self.conn.execute(text, params).rowcount
            except psycopg.Error as e:
                raise Fail(f"{kind} on {'synced' if synced else 'plain'} {table} failed: "
                           f"{type(e).__name__}: {e}\nstatement: {text[:2000]}") from e
        if counts[True] != counts[False]:
            raise Fail(f"{kind} on {table} changed {counts[True]} synced rows but "
                       f"{counts[False]} plain rows\nstatement: {sql[:2000]}")
        self.current.append(f"{kind} {table}: {counts[True]} rows | {sql[:300]}")
        return counts[True]

    def existing(self, table, n):
        pool = self.keys[table]
        return self.rng.sample(pool, min(n, len(pool)))

    def fresh_rows(self, table, n, cols=None):
        """n new rows of fresh keys with the columns given (by default a random choice
        of the writable ones; the others take their defaults), recorded as candidates."""
        if cols is None:
            cols = [c for c in TABLES[table]["writable"] + ["note"] if self.rng.random() < 0.85]
        cols = ["k"] + cols
        rows = []
        for _ in range(n):
            k = self.new_key(table)
            row = [k] + [self.v.column(table, c) for c in cols[1:]]
            # as the verification reads long values (capdiff_shrink): a long run's
            # candidates stay small
            self.candidates[table][k] = (cols, [
                shrunk(v) if c in TABLES[table]["long"] else v for c, v in zip(cols, row)])
            self.txn_keys[table].append(k)
            rows.append(row)
        return cols, rows

    def set_clause(self, table, target, source, cols):
        """SET of the columns `cols`, each by a per-row mode from `source`: 'v' a new
        value (or NULL), 'k' the column itself, 's' the same value in other bytes."""
        parts = []
        for c in cols:
            typ = pg_type(table, c)
            same = SAME[typ].format(c=f"{target}.{c}")
            parts.append(f"{c} = CASE {source}.m_{c} WHEN 'k' THEN {target}.{c}"
                         f" WHEN 's' THEN {same} ELSE {source}.{c}::{typ} END")
        return ", ".join(parts)

    def modes_and_values(self, table, cols, n):
        """Per column: the modes and values of n rows (a column is mostly changed)."""
        out = []
        for c in cols:
            bias = self.rng.random()
            modes, values = [], []
            for _ in range(n):
                x = self.rng.random()
                m = "v" if x < bias else self.rng.choice("ks")
                modes.append(m)
                values.append(self.v.column(table, c) if m == "v" else None)
            out += [modes, values]
        return out

    def pick_cols(self, table, unsent_ok=True):
        pool = TABLES[table]["writable"] + (["note"] if unsent_ok else [])
        return self.rng.sample(pool, self.rng.randint(1, min(4, len(pool))))

    # statement kinds -------------------------------------------------------------------

    def s_insert(self, table):
        n = self.rows_per_statement()
        cols, rows = self.fresh_rows(table, n)
        if n == 1 and self.rng.random() < 0.5:
            casts = ", ".join(f"%s::{self.type_of(table, c)}" for c in cols)
            return self.both("insert values", table,
                             f"INSERT INTO {{t}} ({', '.join(cols)}) VALUES ({casts})", rows[0])
        casts = ", ".join(f"{c}::{self.type_of(table, c)}" for c in cols)
        source, doc = rowset("s", cols, [[row[i] for row in rows] for i in range(len(cols))])
        return self.both("insert select", table,
                         f"INSERT INTO {{t}} ({', '.join(cols)}) SELECT {casts} FROM {source}",
                         [doc])

    def s_copy(self, table):
        cols, rows = self.fresh_rows(table, self.rows_per_statement())
        return self.both("copy", table, f"COPY {{t}} ({', '.join(cols)}) FROM STDIN",
                         copy_rows=rows)

    def s_update_rows(self, table):
        keys = self.existing(table, self.rows_per_statement())
        if not keys:
            return
        # sometimes only the unsent column: no entry
        cols = ["note"] if self.rng.random() < 0.08 else self.pick_cols(table)
        names = ["k"] + [n for c in cols for n in (f"m_{c}", c)]
        source, doc = rowset("v", names, [keys] + self.modes_and_values(table, cols, len(keys)))
        self.both("update rows", table,
                  f"UPDATE {{t}} AS t SET {self.set_clause(table, 't', 'v', cols)}"
                  f" FROM {source} WHERE t.k = v.k", [doc])

    def s_update_where(self, table):
        r = self.rng
        col = r.choice(TABLES[table]["writable"] + ["note"])
        typ = pg_type(table, col)
        x = r.random()
        if x < 0.25:
            expr = SAME[typ].format(c=col)
        elif x < 0.35:
            expr = "NULL"
        elif x < 0.45 and col in TABLES[table]["long"]:
            expr = f"coalesce({col}, '') || repeat('{r.choice('xyz')}', {r.randint(1, 5000)})"
        elif col == "level__c":
            expr = quote(self.v.picklist())
        else:
            expr = r.choice(CHANGE[typ]).format(c=col)
        m = r.choice([3, 10, 50, 400, 400, 2000, 2000, 2000])
        salt = str(r.randint(0, 99))
        self.both("update where", table,
                  f"UPDATE {{t}} SET {col} = {expr} WHERE mod(hashtext(k || %s)::bigint + 2147483648, {m}) = 0",
                  [salt])

    def s_delete(self, table):
        r = self.rng
        if r.random() < 0.7:
            keys = self.existing(table, self.rows_per_statement())
            self.both("delete keys", table, "DELETE FROM {t} WHERE k = ANY(%s::text[])", [keys])
        else:
            m = r.choice([5, 20, 100, 1000])
            self.both("delete where", table,
                      f"DELETE FROM {{t}} WHERE mod(hashtext(k || %s)::bigint + 2147483648, {m}) = 0",
                      [str(r.randint(0, 99))])

    def s_merge(self, table):
        r = self.rng
        n = self.rows_per_statement()
        old = self.existing(table, r.randint(0, n))
        ops = [r.choice("duun") for _ in old]
        cols = [c for c in TABLES[table]["writable"] + ["note"] if r.random() < 0.8]
        new_cols, new_rows = self.fresh_rows(table, max(0, n - len(old)), cols)
        new_ops = [r.choice("iiix") for _ in new_rows]
        keys = old + [row[0] for row in new_rows]
        values = [[self.v.column(table, c) for _ in old] + [row[i + 1] for row in new_rows]
                  for i, c in enumerate(cols)]
        upd = self.pick_cols(table)
        upd_modes = [[r.choice("vvks") for _ in keys] for _ in upd]
        # source columns: k, op, the insert columns, then a mode per updated column
        src = ["k", "op"] + cols + [f"m_{c}" for c in upd]
        source, doc = rowset("s", src, [keys, ops + new_ops] + values + upd_modes)
        ins_cols = ", ".join(["k"] + cols)
        ins_vals = ", ".join(["s.k"] + [f"s.{c}::{pg_type(table, c)}" for c in cols])
        set_parts = []
        for c in upd:
            typ = pg_type(table, c)
            value = f"s.{c}::{typ}" if c in cols else "NULL"
            set_parts.append(f"{c} = CASE s.m_{c} WHEN 'k' THEN t.{c} WHEN 's' THEN "
                             f"{SAME[typ].format(c='t.' + c)} ELSE {value} END")
        self.both("merge", table,
                  f"MERGE INTO {{t}} AS t USING {source} ON t.k = s.k"
                  " WHEN MATCHED AND s.op = 'd' THEN DELETE"
                  f" WHEN MATCHED AND s.op = 'u' THEN UPDATE SET {', '.join(set_parts)}"
                  " WHEN MATCHED THEN DO NOTHING"
                  f" WHEN NOT MATCHED AND s.op = 'i' THEN INSERT ({ins_cols}) VALUES ({ins_vals})"
                  " WHEN NOT MATCHED THEN DO NOTHING", [doc])

    def s_upsert(self, table):
        r = self.rng
        n = self.rows_per_statement()
        old = self.existing(table, r.randint(0, n))
        cols = [c for c in TABLES[table]["writable"] + ["note"] if r.random() < 0.8]
        new_cols, new_rows = self.fresh_rows(table, max(0, n - len(old)), cols)
        keys = old + [row[0] for row in new_rows]
        fresh = ["false"] * len(old) + ["true"] * len(new_rows)
        values = [[self.v.column(table, c) for _ in old] + [row[i + 1] for row in new_rows]
                  for i, c in enumerate(cols)]
        source, doc = rowset("s", ["k", "fresh"] + cols, [keys, fresh] + values)
        ins = ", ".join(["s.k"] + [f"s.{c}::{pg_type(table, c)}" for c in cols])
        # an old key is inserted only while its row exists (it conflicts, and is
        # updated): no key is ever inserted twice
        head = (f"INSERT INTO {{t}} AS t ({', '.join(['k'] + cols)}) SELECT {ins}"
                f" FROM {source}"
                " WHERE s.fresh::boolean OR EXISTS (SELECT 1 FROM {t} x WHERE x.k = s.k)")
        if r.random() < 0.2 or not cols:
            sql = head + " ON CONFLICT (k) DO NOTHING"
        else:
            parts = []
            for c in r.sample(cols, r.randint(1, len(cols))):
                typ = pg_type(table, c)
                parts.append(f"{c} = " + r.choice([
                    f"EXCLUDED.{c}", f"EXCLUDED.{c}", f"t.{c}", SAME[typ].format(c=f"t.{c}"),
                    f"coalesce(EXCLUDED.{c}, t.{c})"]))
            where = r.choice(["", "", f" WHERE t.{cols[0]} IS DISTINCT FROM EXCLUDED.{cols[0]}"])
            sql = head + f" ON CONFLICT (k) DO UPDATE SET {', '.join(parts)}{where}"
        self.both("upsert", table, sql, [doc])

    def s_cte(self, table):
        """One statement deleting, updating and inserting rows of the same table."""
        r = self.rng
        dels = self.existing(table, r.randint(0, 20))
        upds = self.existing(table, r.randint(0, 200))
        col = r.choice(TABLES[table]["writable"])
        expr = r.choice(CHANGE.get(pg_type(table, col), ["{c}"])).format(c=col) \
            if col != "level__c" else quote(self.v.picklist())
        cols, rows = self.fresh_rows(table, r.randint(0, 30))
        casts = ", ".join(f"{c}::{self.type_of(table, c)}" for c in cols)
        source, doc = rowset("s", cols, [[row[i] for row in rows] for i in range(len(cols))])
        self.both("cte", table,
                  "WITH d AS (DELETE FROM {t} WHERE k = ANY(%s::text[]) RETURNING 1),"
                  f" u AS (UPDATE {{t}} SET {col} = {expr} WHERE k = ANY(%s::text[]) RETURNING 1)"
                  f" INSERT INTO {{t}} ({', '.join(cols)}) SELECT {casts} FROM {source}",
                  [dels, upds, doc])

    def refused(self, table):
        """A change Salesforce's rules refuse, on the synced table only, in a savepoint:
        it must fail (when it changes a row at all) and leave nothing."""
        r = self.rng
        # up to 2,500 rows: a refusal after a batch of 1,000 entries was written
        keys = self.existing(table, r.choice([1, 2, 50, 300, 2500]))
        kind = r.randrange(7)
        t = self.name(table, True)
        if kind == 0:
            col = "score__c" if table == "acct" else "meta"
            # a value the generator never writes: every matched row changes
            value = "42.4242424242" if table == "acct" else quote('{"refused": true}')
            sql, params = f"UPDATE {t} SET {col} = {value} WHERE k = ANY(%s::text[])", [keys]
            state = "428C9"
        elif kind == 1:
            sql, params, state = f"UPDATE {t} SET k = k || 'x' WHERE k = ANY(%s::text[])", [keys], "428C9"
        elif kind == 2:
            sql, params, state = f"UPDATE {t} SET id = 'x' || k WHERE k = ANY(%s::text[])", [keys], "428C9"
        elif kind == 3 and table == "acct":
            # only the last row is refused: earlier rows' entries (batched for many) go
            sql = (f"UPDATE {t} SET level__c = CASE WHEN k = (SELECT max(k) FROM {t}"
                   " WHERE k = ANY(%s::text[])) THEN 'Platinum' ELSE 'Gold' END"
                   " WHERE k = ANY(%s::text[])")
            params, state = [keys, keys], "23514"
        elif kind == 4:
            k = self.new_key(table)
            sql, params, state = f"INSERT INTO {t} (k, id) VALUES (%s, 'x')", [k], "428C9"
        elif kind == 5:
            # _row_id is the row's key in the log: never changed
            sql, params, state = (f"UPDATE {t} SET _row_id = DEFAULT WHERE k = ANY(%s::text[])",
                                  [keys], "0A000")
        else:
            # refused by capture, or by Postgres first when the transaction has
            # deferred trigger events of the table pending (the poison trigger's)
            sql, params, state = f"TRUNCATE {t}", [], ("0A000", "55006")
        self.count("refused")
        sp = f"r{next(self.savepoints)}"
        self.conn.execute(f"SAVEPOINT {sp}")
        try:
            cur = self.conn.execute(sql, params)
        except psycopg.Error as e:
            if e.sqlstate not in (state if isinstance(state, tuple) else (state,)):
                raise Fail(f"refused statement failed with {e.sqlstate} {e}, not {state}: {sql}")
            self.conn.execute(f"ROLLBACK TO SAVEPOINT {sp}")
            self.current.append(f"refused {table}: {sql[:200]}")
            return
        if cur.rowcount != 0 or sql.startswith("TRUNCATE"):
            raise Fail(f"a change Salesforce refuses was let through ({cur.rowcount} rows): {sql}")
        self.conn.execute(f"RELEASE SAVEPOINT {sp}")

    def statement(self, table):
        r = self.rng
        size = len(self.keys[table])
        weights = {
            self.s_insert: 14 if size < 3000 else 4,
            self.s_copy: 6 if size < 3000 else 2,
            self.s_update_rows: 22,
            self.s_update_where: 10,
            self.s_delete: 8 if size > 800 else 3,
            self.s_merge: 12,
            self.s_upsert: 12,
            self.s_cte: 4,
            self.refused: 3,
        }
        fn = r.choices(list(weights), list(weights.values()))[0]
        fn(table)

    def statements(self, depth=0):
        r = self.rng
        for _ in range(r.choice([1, 1, 2, 3, 4, 6])):
            if r.random() < 0.03 and not self.altered:
                self.expand()
            if depth < 3 and r.random() < 0.12:
                self.savepoint(depth)
            elif r.random() < 0.01:
                self.alter_item()
            else:
                self.statement(r.choice(list(TABLES)))

    def alter_item(self):
        """ALTER TABLE of item (both) in the transaction, capture installed again as the
        worker does after a describe: a column of no Salesforce field added (with a
        default: the rows before it have fewer attributes) or one such dropped. Entries
        batched before it keep the description they were kept with."""
        r = self.rng
        extras = [c for (c,) in query_rows(
            self.conn, "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                       " AND attname LIKE 'extra%%' AND NOT attisdropped ORDER BY attnum",
            [f"{self.plain}.item"])]
        if extras and r.random() < 0.4:
            col = r.choice(extras)
            ddl, what = f" DROP COLUMN {col}", "drop column"
        else:
            col = f"extra{len(extras)}_{r.randrange(10**6)}"
            ddl, what = f" ADD COLUMN {col} text DEFAULT {quote(self.v.text())}", "add column"
        for synced in (True, False):
            self.conn.execute(f"ALTER TABLE {self.name('item', synced)}" + ddl)
        self.conn.execute("SELECT sequin_sf._install_capture(%s, 'item')", [self.schema])
        # _install_capture locked the log and batch tables (it readies them again)
        # until the transaction ends: the worker's unpacking waits for it
        self.altered = True
        self.current.append(f"{what} item: {ddl}")
        self.count(f"alter table: {what}")
        if what == "add column" and r.random() < 0.5:
            # a change of that column only: no entry
            self.both("update unsent", "item", f"UPDATE {{t}} SET {col} = 'set'"
                      " WHERE mod(hashtext(k)::bigint + 2147483648, 7) = 0")

    def savepoint(self, depth):
        sp = f"s{next(self.savepoints)}"
        self.conn.execute(f"SAVEPOINT {sp}")
        self.current.append(f"SAVEPOINT {sp}")
        self.statements(depth + 1)
        if self.rng.random() < 0.5:
            self.conn.execute(f"ROLLBACK TO SAVEPOINT {sp}")
            self.current.append(f"ROLLBACK TO SAVEPOINT {sp}")
            self.count("savepoint rolled back")
        else:
            self.conn.execute(f"RELEASE SAVEPOINT {sp}")
            self.current.append(f"RELEASE SAVEPOINT {sp}")
            self.count("savepoint released")

    def expand(self):
        """The worker's unpacking of batches, from its own session, as it runs it; what
        it unpacks is counted (batched entries, kept rows before, kept rows over 2 kB:
        values stored out of line, fetched when kept)."""
        with self.expander.transaction():
            self.expander.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            batches, entries, kept, long_kept = query_rows(self.expander, f"""
                SELECT count(*), coalesce(sum(cardinality(ids)), 0),
                       coalesce(sum(cardinality(previous_rows)), 0),
                       coalesce(sum((SELECT count(*) FROM unnest(previous_rows) r
                                      WHERE length(r) > 2048)), 0)
                  FROM {self.schema}._sync_write_batch""")[0]
            self.expander.execute("SELECT sequin_sf._write_expand_batches(%s)", [self.schema])
        self.count("expand")
        self.count("batch rows", batches)
        self.count("batched entries", entries)
        self.count("kept rows before", kept)
        self.count("kept rows over 2 kB", int(long_kept))

    def transaction(self, i):
        r = self.rng
        c = self.conn
        for table in TABLES:
            self.keys[table] = [k for (k,) in query_rows(
                c, f"SELECT k FROM {self.plain}.{table} ORDER BY k")]
        self.txn_keys = {t: [] for t in TABLES}
        self.current = []
        self.altered = False
        c.execute("BEGIN")
        c.execute(f"SET LOCAL TimeZone = '{r.choice(ZONES)}'")
        c.execute(f"SET LOCAL DateStyle = '{r.choice(DATESTYLES)}'")
        ending = r.random()
        if not 0.10 <= ending < 0.13 and r.random() < 0.1:
            # a replication session (capture's triggers fire ALWAYS; the poison trigger,
            # which the COMMIT that fails needs, would not)
            c.execute("SET LOCAL session_replication_role = replica")
            self.current.append("session_replication_role = replica")
            self.count("replica role")
        if r.random() < 0.04:
            # many one-row statements: the transaction's entries beyond its 100th batched
            self.count("chatty transaction")
            for _ in range(r.randint(60, 260)):
                table = r.choice(list(TABLES))
                x = r.random()
                if x < 0.4:
                    cols, rows = self.fresh_rows(table, 1)
                    casts = ", ".join(f"%s::{self.type_of(table, col)}" for col in cols)
                    self.both("insert values", table,
                              f"INSERT INTO {{t}} ({', '.join(cols)}) VALUES ({casts})", rows[0])
                    self.keys[table].append(rows[0][0])
                elif x < 0.8:
                    keys = self.existing(table, 1)
                    if keys:
                        col = r.choice(TABLES[table]["writable"])
                        self.both("update one", table,
                                  f"UPDATE {{t}} SET {col} = %s::{pg_type(table, col)} WHERE k = %s",
                                  [self.v.column(table, col), keys[0]])
                else:
                    keys = self.existing(table, 1)
                    self.both("delete one", table, "DELETE FROM {t} WHERE k = ANY(%s::text[])", [keys])
        else:
            self.statements()
            for table in TABLES:  # later statements may touch this transaction's rows
                self.keys[table] += self.txn_keys[table]
            if r.random() < 0.5:
                self.statements()
        try:
            if ending < 0.07:
                c.execute("ROLLBACK")
                self.current.append("ROLLBACK")
                self.count("rolled back")
            elif ending < 0.10:
                # an error aborts the transaction; the rest of it is refused
                try:
                    c.execute(f"UPDATE {self.schema}.acct SET score__c = 1")
                    c.execute("COMMIT")  # an empty table refuses nothing
                    self.current.append("COMMIT (nothing refused)")
                except psycopg.Error as e:
                    if e.sqlstate != "428C9":
                        raise
                    c.execute("ROLLBACK")
                    self.current.append("aborted by an error")
                    self.count("aborted by an error")
            elif ending < 0.13:
                # fails at COMMIT: a deferred constraint trigger on both tables refuses
                # a row (inserted or updated in this transaction)
                c.execute(f"INSERT INTO {self.schema}.acct (k, name) VALUES (%s, %s)",
                          [self.new_key("acct"), POISON])
                c.execute(f"INSERT INTO {self.plain}.acct (k, name) VALUES (%s, %s)",
                          [self.new_key("acct"), POISON])
                try:
                    c.execute("COMMIT")
                except errors.RaiseException:
                    self.current.append("failed at COMMIT")
                    self.count("failed at commit")
                else:
                    raise Fail("a poisoned transaction committed")
            else:
                c.execute("COMMIT")
                self.current.append("COMMIT")
                self.count("committed")
        except psycopg.Error as e:
            raise Fail(f"transaction {i} failed to end: {e}") from e
        if not self.current[-1].startswith("COMMIT"):
            for table in TABLES:  # no row of it can be named by the log
                for k in self.txn_keys[table]:
                    self.candidates[table].pop(k, None)
        last = query_value(c, "SELECT last_value FROM pg_sequences WHERE schemaname = %s"
                              " AND sequencename = '_sync_write_log_id_seq'", [self.schema])
        self.history.append((last or 0, self.current))

    def generate(self):
        for i in range(self.transactions):
            try:
                self.transaction(i)
            except Exception:
                if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.conn.execute("ROLLBACK")
                raise
            if self.rng.random() < 0.05:
                self.expand()

    # --- verification ----------------------------------------------------------------

    def verify(self):
        v = self.conn
        set_json_loads(partial(json.loads, parse_float=Decimal), v)
        v.execute("SET TimeZone = 'Asia/Kathmandu'")  # none of the generator's zones
        self.expand()
        assert query_value(v, f"SELECT count(*) FROM {self.schema}._sync_write_batch") == 0
        shrink = self.shrink_sql()
        types = {t: self.column_types(t) for t in TABLES}
        replays = {t: Replay(self, t, types[t], shrink) for t in TABLES}
        for replay in replays.values():
            replay.begin()
        # the log read in id order, a few thousand entries at a time (a long run logs
        # millions)
        entries = 0
        with v.transaction(), v.cursor(name="entries") as cur:
            cur.itersize = 5000
            cur.execute(f"SELECT id, table_name, object_name, row_id, action, api_id, state,"
                        f" api_message, retry_of, {shrink.format(j='previous')},"
                        f" {shrink.format(j=VALUES)} FROM {self.schema}._sync_write_log"
                        f" ORDER BY id")
            for e in cur:
                entries += 1
                replay = replays.get(e[1])
                if replay is None:
                    raise Fail(self.report([Problem(e[1], f"entry {e[0]} of table {e[1]}")]))
                if not replay.step(e):
                    break
        self.stats["entries"] = entries
        problems = []
        for replay in replays.values():
            replay.finish(problems)
        if problems:
            raise Fail(self.report(problems))

    def shrink_sql(self):
        """A jsonb row with its long text values replaced by their md5 (only `body` and
        `title` can be long; capdiff_shrink, created with the database): the
        comparison stays exact, the transfer small."""
        return "public.capdiff_shrink({j})"

    def report(self, problems):
        lines = [f"capture differential, seed {self.seed} ({self.transactions} transactions):"
                 f" {len(problems)} problem(s); rerun with SEQUIN_SF_SEED={self.seed}"]
        first = problems[0]
        lines.append("first: " + first.text)
        if first.row_id is not None:
            lines.append(f"entries of {first.table} row {first.row_id}:")
            for e in query_rows(
                    self.conn, f"SELECT id, table_name, object_name, row_id, action, api_id,"
                               f" state, api_message, retry_of, previous, {VALUES}"
                               f" FROM {self.schema}._sync_write_log WHERE table_name = %s"
                               f" AND row_id = %s ORDER BY id", [first.table, first.row_id]):
                lines.append(f"  {e[0]} {e[4]} api_id={e[5]} state={e[6]} {e[7] or ''}"
                             f" previous={short(e[9])} values={short(e[10])}")
                lines.append(f"     in transaction {self.transaction_of(e[0])}")
        if first.entry_id is not None:
            i = self.transaction_of(first.entry_id)
            if i is not None:
                lines.append(f"transaction {i} (of entry {first.entry_id}):")
                lines += ["  " + s for s in self.history[i][1]]
        lines += ["more: " + p.text for p in problems[1:10]]
        lines.append(f"stats: {self.stats}")
        return "\n".join(lines)

    def transaction_of(self, entry_id):
        for i, (last, _) in enumerate(self.history):
            if entry_id <= last:
                return i
        return None


def short(j):
    if j is None:
        return None
    s = json.dumps(j, default=str, ensure_ascii=False)
    return s if len(s) < 600 else s[:600] + "..."


class Problem:
    def __init__(self, table, text, row_id=None, entry_id=None):
        self.table, self.text, self.row_id, self.entry_id = table, text, row_id, entry_id


VALUES = '"values"'


def canon(typ, v):
    """A value of the log's or to_jsonb's jsonb as something that compares equal
    exactly when the values are stored alike (capture's test of a change): numerics as
    written, scale included (jsonb keeps it; parsed as Decimal, whose str keeps it too),
    timestamps as instants (the log writes them in the session's TimeZone)."""
    if v is None:
        return None
    if typ == "numeric":
        # as written, scale included: 1.5 and 1.50 are stored differently (NaN and the
        # infinities are strings)
        return str(v)
    if typ.startswith("timestamp"):
        if v in ("infinity", "-infinity"):
            return v
        return datetime.fromisoformat(v).astimezone(timezone.utc).isoformat()
    if typ in ("integer", "bigint"):
        return int(v)
    return v


class Replay:
    """The log of one table replayed onto its starting rows."""

    def __init__(self, run, table, types, shrink):
        self.run_ = run
        self.table = table
        self.types = types
        self.spec = TABLES[table]
        self.sent = list(self.spec["fields"])  # the columns compared
        self.columns = {c for c in types if not c.startswith("extra")}
        self.shrink = shrink
        c = run.conn
        self.final = {rid: self.row(j) for rid, j in query_rows(
            c, f"SELECT _row_id, {shrink.format(j='to_jsonb(t)')} FROM {run.schema}.{table} t")}
        self.final_keys = {rid: r["k"] for rid, r in self.final.items()}
        self.plain = {r["k"]: r for r in (self.row(j) for (j,) in query_rows(
            c, f"SELECT {shrink.format(j='to_jsonb(t)')} FROM {run.plain}.{table} t"))}

    def row(self, j):
        return {c: canon(self.types[c], j.get(c)) for c in self.sent}

    def candidate_rows(self, keys):
        """The rows the generator inserted with `keys`, as the table stores them
        (defaults filled, values cast by Postgres): key -> row. Kept for the run's later
        verifications, which only add keys."""
        run, c = self.run_, self.run_.conn
        cache = run.candidate_cache.setdefault(self.table, {})
        keys = [k for k in keys if k not in cache]
        if not keys:
            return cache
        temp = f"cand_{self.table}"
        c.execute(f"DROP TABLE IF EXISTS pg_temp.{temp}")
        c.execute(f"CREATE TEMP TABLE {temp} (LIKE {run.plain}.{self.table}"
                  " INCLUDING DEFAULTS INCLUDING IDENTITY)")
        groups = {}
        for k in keys:
            cols, row = run.candidates[self.table][k]
            groups.setdefault(tuple(cols), []).append(row)
        for cols, rows in groups.items():
            casts = ", ".join(f"{col}::{run.type_of(self.table, col)}" for col in cols)
            source, doc = rowset("s", cols, [[r[i] for r in rows] for i in range(len(cols))])
            c.execute(f"INSERT INTO pg_temp.{temp} ({', '.join(cols)}) SELECT {casts}"
                      f" FROM {source}", [doc])
        for (j,) in query_rows(c, f"SELECT {self.shrink.format(j='to_jsonb(t)')}"
                                  f" FROM pg_temp.{temp} t"):
            cache[j["k"]] = self.row(j)
        return cache

    def begin(self):
        """Ready to replay: the starting rows, and the key of every row id the log names
        (its row's key in the table, else in any entry's previous: keys never change)."""
        run = self.run_
        start = run.start_rows[self.table]
        self.state = dict(start)  # row_id -> row (sent columns), alive rows
        self.seen = set(start)  # every row id that ever lived
        self.key_of = dict(self.final_keys)
        for rid, k in query_rows(run.conn, f"SELECT row_id, min(previous ->> 'k')"
                                           f" FROM {run.schema}._sync_write_log"
                                           " WHERE table_name = %s AND previous IS NOT NULL"
                                           " GROUP BY row_id", [self.table]):
            self.key_of.setdefault(rid, k)
        # how the rows the log can name were inserted (not those of rolled-back
        # statements, which no entry and no row names)
        self.inserted = self.candidate_rows(
            {k for k in self.key_of.values() if k in run.candidates[self.table]})
        self.inserted_as = {}  # key -> the row id its insert entry named
        self.writable = set(self.spec["writable"])
        self.bad = []

    def step(self, e):
        """Replays entry e; False once there are too many problems to go on."""
        state, seen, key_of, inserted_as = self.state, self.seen, self.key_of, self.inserted_as
        writable, bad = self.writable, self.bad

        def problem(text, e):
            bad.append(Problem(self.table, f"entry {e[0]} ({e[4]} of row {e[3]}): {text}",
                               e[3], e[0]))

        (eid, _, obj, rid, action, api_id, st, msg, retry_of, prev, vals) = e
        if len(bad) > 50:
            return False
        if obj != self.spec["object"] or st != "new" or msg or retry_of:
            problem(f"object {obj}, state {st}, message {msg!r}, retry_of {retry_of}", e)
            return True
        if action == "insert":
            if rid in seen:
                problem("inserts a row id that already lived (duplicate or reordered)", e)
                return True
            if prev is not None or vals is not None or api_id is not None:
                problem("an insert entry carries previous, values or api_id", e)
            k = key_of.get(rid)
            if k is None:
                problem("its row is not in the table and no later entry names it: a "
                        "delete escaped capture, or the insert was rolled back", e)
                return True
            if k in inserted_as:
                problem(f"key {k} inserted again (first as row {inserted_as[k]})", e)
                return True
            if k not in self.inserted:
                problem(f"key {k} was never inserted by the generator", e)
                return True
            inserted_as[k] = rid
            seen.add(rid)
            state[rid] = dict(self.inserted[k])
            return True
        if rid not in state:
            problem("its row is not alive at this point of the log (missing insert, "
                    "duplicate delete, or entries out of order)", e)
            return True
        before = state[rid]
        if prev is None:
            problem("no previous", e)
            return True
        # every column of the table as it was (item's extra* come and go)
        if {c for c in prev if not c.startswith("extra")} != self.columns:
            problem(f"previous has columns {sorted(prev)}, the table {sorted(self.columns)}", e)
        if prev.get("_row_id") != rid:
            problem(f"previous is of row {prev.get('_row_id')}", e)
        if api_id != prev.get("id"):
            problem(f"api_id {api_id!r} is not the row's id {prev.get('id')!r}", e)
        got = self.row(prev)
        if got != before:
            diff = {c: (before[c], got[c]) for c in self.sent if before[c] != got[c]}
            problem(f"previous differs from the replayed row (replayed, logged): {diff}", e)
        if action == "delete":
            if vals is not None:
                problem("a delete entry carries values", e)
            del state[rid]
            return True
        if action != "update":
            problem(f"unknown action {action}", e)
            return True
        if not vals:
            problem("an update entry without values (an update changing nothing sent "
                    "makes no entry)", e)
            return True
        after = dict(before)
        for c, raw in vals.items():
            if c not in writable:
                problem(f"values holds {c}, which is not a column Salesforce lets us update", e)
                continue
            value = canon(self.types[c], raw)
            if value == before[c]:
                problem(f"values holds {c} = {short(raw)}, which it had already", e)
            after[c] = value
        state[rid] = after
        return True

    def finish(self, problems):
        """What the replay left must be the synced table and the plain one."""
        state, seen, bad = self.state, self.seen, self.bad
        problems += bad
        if bad:
            return
        # what the log gives is the synced table, row by row ...
        for rid in sorted(set(state) | set(self.final)):
            if state.get(rid) != self.final.get(rid):
                problems.append(Problem(
                    self.table, f"row {rid}: replayed {short(state.get(rid))}\n"
                                f"   but the synced table has {short(self.final.get(rid))}"
                                + ("" if rid in self.final or rid in seen else
                                   " (its insert escaped capture)"), rid))
                if len(problems) > 20:
                    return
        # ... and the plain table, by key
        replayed = {r["k"]: (rid, r) for rid, r in state.items()}
        for k in sorted(set(replayed) | set(self.plain)):
            rid, got = replayed.get(k, (None, None))
            if got != self.plain.get(k):
                problems.append(Problem(
                    self.table, f"key {k}: replayed {short(got)}\n"
                                f"   but the plain table has {short(self.plain.get(k))}", rid))
                if len(problems) > 20:
                    return


# -------------------------------------------------------------------------------------
# The replay's own test: logs tampered as a capture bug would leave them must fail it.


def tampers(run):
    """(what a capture bug would do, SQL doing it to the log or the tables); each picks
    its target among the run's entries."""
    log = f"{run.schema}._sync_write_log"
    rng = random.Random(run.seed)
    c = run.conn

    def pick(where):
        ids = [i for (i,) in query_rows(c, f"SELECT id FROM {log} WHERE {where} ORDER BY id")]
        assert ids, f"no entry {where} to tamper with"
        return rng.choice(ids)

    def copy(entry, row_id="row_id"):
        top = query_value(c, f"SELECT max(id) FROM {log}")
        return (f"INSERT INTO {log} (id, table_name, object_name, row_id, action, api_id,"
                f" previous, {VALUES}) OVERRIDING SYSTEM VALUE SELECT {top + 1}, table_name,"
                f" object_name, {row_id}, action, api_id, previous, {VALUES}"
                f" FROM {log} WHERE id = {entry}")

    def set_values(expr, entry):
        return f"UPDATE {log} SET {VALUES} = {VALUES} {expr} WHERE id = {entry}"

    update, delete, insert = (pick(f"action = '{a}'") for a in ("update", "delete", "insert"))
    acct_update = pick("action = 'update' AND table_name = 'acct'")
    without_qty = pick("action = 'update' AND table_name = 'acct' AND NOT \"values\" ? 'qty'")
    with_name = pick("action = 'update' AND \"values\" ? 'name'")
    acct_delete = pick("action = 'delete' AND table_name = 'acct'")
    row = query_value(c, f"SELECT row_id FROM {log} WHERE action = 'update'"
                         " GROUP BY row_id HAVING count(*) > 1 ORDER BY row_id LIMIT 1")
    a, b = [i for (i,) in query_rows(c, f"SELECT id FROM {log} WHERE row_id = %s"
                                        " AND action = 'update' ORDER BY id LIMIT 2", [row])]
    k = query_value(c, f"SELECT k FROM {run.plain}.acct ORDER BY k LIMIT 1")
    return [
        ("an update missed", f"DELETE FROM {log} WHERE id = {update}"),
        ("a delete missed", f"DELETE FROM {log} WHERE id = {delete}"),
        ("an insert missed", f"DELETE FROM {log} WHERE id = {insert}"),
        ("an update logged twice", copy(update)),
        ("an insert logged twice", copy(insert)),
        ("a rolled-back insert logged", copy(insert, "row_id + 10000000")),
        ("two changes of a row out of order",
         f"UPDATE {log} l SET previous = o.previous, {VALUES} = o.{VALUES} FROM {log} o"
         f" WHERE (l.id, o.id) IN (({a}, {b}), ({b}, {a}))"),
        ("a wrong value", set_values("|| '{\"name\": \"tampered\"}'", acct_update)),
        ("a value it had already",
         set_values("|| jsonb_build_object('qty', previous -> 'qty')", without_qty)),
        ("a changed column left out", set_values("- 'name'", with_name)),
        ("an unsent column sent", set_values("|| '{\"note\": \"x\"}'", update)),
        ("a wrong row before", f"UPDATE {log} SET previous = previous"
                               f" || '{{\"active\": null, \"qty\": -1}}' WHERE id = {acct_delete}"),
        ("an entry failed", f"UPDATE {log} SET state = 'failed' WHERE id = {update}"),
        ("a change of the table escaped capture",
         f"SET LOCAL sequin_sf.applying = on; UPDATE {run.schema}.acct SET qty = -7 WHERE k = '{k}'"),
        ("a statement did something else on the synced table",
         f"UPDATE {run.plain}.acct SET qty = -7 WHERE k = '{k}'"),
    ]


def test_the_replay_fails_on_a_tampered_log(cluster):
    """Each tampering (in a transaction rolled back afterwards) must make the replay fail,
    and the log as capture left it must pass."""
    run = generated_run(cluster, "capture_differential", 7, 30, start_rows=(60, 120))
    try:
        run.verify()
        for what, sql in tampers(run):
            run.conn.execute("BEGIN")
            run.conn.execute(sql)
            try:
                run.verify()
            except Fail as e:
                assert "problem" in str(e), e
            else:
                raise AssertionError(f"the replay did not notice {what}: {sql}")
            finally:
                run.conn.execute("ROLLBACK")
        run.verify()
    finally:
        run.close()


SCHEMAS = itertools.count()


def generated_run(cluster, dbname, seed, transactions, **kwargs):
    """A run set up and its transactions generated (not verified yet)."""
    run = Run(cluster, dbname, f"cd{next(SCHEMAS)}_{seed % 10**6}", seed, transactions, **kwargs)
    run.setup()
    run.read_start_rows()
    try:
        run.generate()
    except Fail as e:
        raise Fail(f"seed {seed}: {e}\nrerun with SEQUIN_SF_SEED={seed}") from e
    except psycopg.Error as e:
        raise Fail(f"seed {seed}: unexpected {type(e).__name__}: {e}\n"
                   f"transaction so far: {run.current}\nrerun with SEQUIN_SF_SEED={seed}") from e
    return run


def run_seed(cluster, dbname, seed, transactions, batches=True):
    """`batches`: the capture under test writes batches (the C capture does; the PL/pgSQL
    one of sql/plain/library.sql logs every entry directly)."""
    started = time.monotonic()
    run = generated_run(cluster, dbname, seed, transactions)
    try:
        generated = time.monotonic() - started
        run.verify()
        print(f"seed {seed}: {transactions} transactions in {generated:.1f}s, verified in "
              f"{time.monotonic() - started - generated:.1f}s; {run.stats}")
        # not a vacuous run: entries went both ways, and batches kept rows before,
        # values stored out of line among them
        st = run.stats
        if batches:
            assert st["entries"] > st.get("batched entries", 0) > 0, st
            assert st.get("kept rows over 2 kB", 0) > 0, st
        else:
            assert st["entries"] > 0 and st.get("batched entries", 0) == 0, st
    finally:
        run.close()


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        with c.connect() as conn:
            conn.execute("CREATE DATABASE capture_differential")
        with c.connect(dbname="capture_differential") as conn:
            conn.execute("CREATE EXTENSION sequin_sf")
            conn.execute(SHRINK)
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def plain_capture():
    """A Postgres that loads no library of ours, with the objects `sequin-sf install`
    creates: capture is the PL/pgSQL trigger of sql/plain/library.sql."""
    c = Cluster(settings={"shared_preload_libraries": "''"})
    try:
        with c.connect() as conn:
            conn.execute("CREATE DATABASE capture_plain")
        done = sequin_sf_cli("install", "--database-url", c.dsn(dbname="capture_plain"))
        assert done.returncode == 0, done.stderr
        with c.connect(dbname="capture_plain") as conn:
            conn.execute(SHRINK)
        yield c
    finally:
        c.destroy()


def test_plain_capture_random_transactions_replay_from_the_log(plain_capture):
    run_seed(plain_capture, "capture_plain", the_seed(), NORMAL_TRANSACTIONS, batches=False)


SHRINK = """
CREATE FUNCTION public.capdiff_shrink(j jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT j
        || CASE WHEN length(j ->> 'body') > 200
                THEN jsonb_build_object('body', 'md5:' || md5(j ->> 'body')) ELSE '{}' END
        || CASE WHEN length(j ->> 'title') > 200
                THEN jsonb_build_object('title', 'md5:' || md5(j ->> 'title')) ELSE '{}' END
$$;
"""


def the_seed():
    return int(os.environ.get("SEQUIN_SF_SEED") or random.SystemRandom().randrange(10**9))


def test_random_transactions_replay_from_the_log(cluster):
    run_seed(cluster, "capture_differential", the_seed(), NORMAL_TRANSACTIONS)


@pytest.mark.long  # skipped unless SEQUIN_SF_LONG=1 (conftest.py)
def test_many_random_transactions_replay_from_the_log(cluster):
    run_seed(cluster, "capture_differential", the_seed(), LONG_TRANSACTIONS)


@pytest.mark.parametrize("seed,transactions", REGRESSION_SEEDS,
                         ids=[f"seed{s}" for s, _ in REGRESSION_SEEDS])
def test_regression_seed(cluster, seed, transactions):
    run_seed(cluster, "capture_differential", seed, transactions)


STAMP = """
CREATE FUNCTION {s}.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {s}.acct SET name = NEW.name || ' (stamped)', note = 'stamped'
     WHERE _row_id = NEW._row_id;
    RETURN NULL;
END $$;
CREATE TRIGGER stamp AFTER INSERT OR UPDATE ON {s}.acct FOR EACH ROW
    WHEN (NEW.note = 'stamp') EXECUTE FUNCTION {s}.stamp();
"""


@pytest.mark.parametrize("capture", ["c", "plpgsql"])
@pytest.mark.parametrize("statement", ["insert", "update"])
def test_a_row_trigger_changing_its_own_row_is_logged_after_the_change(request, statement, capture):
    """An application's AFTER ROW trigger that changes the row it fired for (STAMP: marks
    the name as stamped) runs its UPDATE, and that statement's capture, before the
    statement that fired it is captured. Its entry must still follow the change it
    followed in the log (src/capture/nested.rs): once it came first, and for an insert
    the writer settled the update failed ('the row is not in Salesforce')."""
    cluster, dbname = ((request.getfixturevalue("cluster"), "capture_differential") if capture == "c"
                       else (request.getfixturevalue("plain_capture"), "capture_plain"))
    run = Run(cluster, dbname, f"cdnest{next(SCHEMAS)}_{statement}", 11, 1,
              start_rows=(20, 20))
    try:
        run.setup()
        run.read_start_rows()
        run.txn_keys = {t: [] for t in TABLES}
        run.current = []
        run.history.append((0, run.current))
        if statement == "insert":
            row = [run.new_key("acct"), "Acme", "stamp"]
            run.candidates["acct"][row[0]] = (["k", "name", "note"], row)
            run.both("insert", "acct", "INSERT INTO {t} (k, name, note) VALUES (%s, %s, %s)",
                     row)
        else:
            k = query_value(run.conn, f"SELECT min(k) FROM {run.plain}.acct")
            run.both("update", "acct", "UPDATE {t} SET name = 'Acme', note = 'stamp'"
                     " WHERE k = %s", [k])
        run.history[-1] = (query_value(run.conn, f"SELECT max(id) FROM {run.schema}._sync_write_log"),
                           run.current)
        run.verify()
    finally:
        run.close()


@pytest.mark.skipif(os.environ.get("SEQUIN_SF_CAPTURE_BUGS") != "1",
                    reason="capture bugs not fixed yet: set SEQUIN_SF_CAPTURE_BUGS=1")
@pytest.mark.parametrize("seed,transactions", CAPTURE_BUG_SEEDS,
                         ids=[f"seed{s}" for s, _ in CAPTURE_BUG_SEEDS])
def test_capture_bug_seed(cluster, seed, transactions):
    run_seed(cluster, "capture_differential", seed, transactions)

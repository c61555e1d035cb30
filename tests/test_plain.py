"""sequin_sf on a Postgres that loads no library of ours, as on a managed service: the
`sequin-sf` program connects as a role with LOGIN and CREATE on the database only (no
superuser), installs the objects with plain SQL and PL/pgSQL, and runs the same syncs:
the same management functions, the same tables, and write-back through a PL/pgSQL
capture trigger that logs the same entries as the extension's C capture."""

import signal

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import (CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, Cluster, Sidecar,
                     create_sidecar_credential, free_port, plain_cluster,
                     query_rows, query_value, sequin_sf_cli, sf_records, wait_backfilled,
                     wait_for, wait_settled)


def key_file(tmp_path):
    path = str(tmp_path / "sequin-sf.key")
    done = sequin_sf_cli("key", "create", path)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def plain(start_emulator, tmp_path):
    """(emulator, cluster, owner connection, app connection, sidecar, key file): a
    sidecar running as sync_owner against a Postgres with no library of ours, with
    sequin_sf installed by it, a credential made with `sequin-sf credential create` and
    a sync of Contact and Account backfilled; `app` is an application role granted DML
    on the synced tables by the owner."""
    emulator = start_emulator("--seed", "3", "--generate", "Account=15,Contact=120")
    cluster = plain_cluster()
    key = key_file(tmp_path)
    owner_dsn = cluster.dsn(user="sync_owner")
    sidecar = Sidecar(owner_dsn, key, listen=f"127.0.0.1:{free_port()}")
    owner = psycopg.connect(owner_dsn, autocommit=True)
    app = None
    try:
        wait_for(lambda: query_value(owner, "SELECT to_regclass('sequin_sf._release') IS NOT NULL"),
                 what="sequin-sf installing its objects", timeout=60)
        printed = create_sidecar_credential(owner_dsn, key, emulator)
        assert "logged in" in printed, printed
        owner.execute("SELECT sequin_sf.create_sync('emu', credential => 'emu',"
                      " collections => ARRAY['Contact', 'Account'])")
        wait_backfilled(owner, "emu")
        with cluster.connect() as su:
            su.execute("CREATE ROLE app LOGIN")
        owner.execute("GRANT USAGE ON SCHEMA salesforce TO app")
        owner.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON salesforce.contact, salesforce.account TO app")
        app = psycopg.connect(cluster.dsn(user="app"), autocommit=True)
        yield emulator, cluster, owner, app, sidecar, key
    finally:
        if app:
            app.close()
        owner.close()
        sidecar.stop(signal.SIGKILL)
        cluster.destroy()


def test_a_role_with_create_only_installs_syncs_and_writes_back(plain):
    emulator, cluster, owner, app, sidecar, key = plain
    # nothing of ours is loaded: no extension, no C function, and the role is no superuser
    assert query_value(owner, "SELECT count(*) FROM pg_extension WHERE extname = 'sequin_sf'") == 0
    assert query_value(owner, "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                              " WHERE p.pronamespace = 'sequin_sf'::regnamespace AND l.lanname = 'c'") == 0
    assert query_value(owner, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
    assert query_value(owner, "SELECT version FROM sequin_sf._release") == "0.2.0"
    # the same management functions: the org's objects, the sync's status
    names = [r[0] for r in query_rows(owner, "SELECT name FROM sequin_sf.available_collections('emu')")]
    assert "Contact" in names and "Opportunity" in names
    with pytest.raises(psycopg.errors.UndefinedObject) as err:
        owner.execute("SELECT sequin_sf.create_sync('x', credential => 'emu', collections => ARRAY['Contactt'],"
                      " schema_name => 'other')")
    assert "did you mean Contact" in str(err.value.diag.message_hint)
    assert query_value(owner, "SELECT count(*) FROM salesforce.contact") == 120
    joined = query_value(owner, "SELECT count(*) FROM salesforce.contact c"
                                " JOIN salesforce.account a ON a.id = c.account_id")
    assert joined == len(sf_records(emulator, "SELECT Id FROM Contact WHERE AccountId != null"))

    # write-back of an application role's insert, update and delete
    app.execute("INSERT INTO salesforce.contact (last_name, title) VALUES ('Plain-Insert', 'T1')")
    target, victim = [r[0] for r in query_rows(owner, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 2")]
    app.execute("UPDATE salesforce.contact SET title = 'Plain-Update' WHERE id = %s", (target,))
    app.execute("DELETE FROM salesforce.contact WHERE id = %s", (victim,))
    entries = query_rows(owner, "SELECT id, action, api_id, \"values\", previous"
                                " FROM salesforce._sync_write_log ORDER BY id")
    assert [e[1] for e in entries] == ["insert", "update", "delete"]
    ins, upd, dele = entries
    # an insert's values are read from the row when sequin-sf sends it, which may already
    # have happened: either way nothing of the row is kept beside it
    assert ins[3] in (None, {"last_name": "Plain-Insert", "title": "T1"}) and ins[4] is None
    assert upd[2] == target and upd[3] == {"title": "Plain-Update"}
    assert upd[4]["id"] == target and "_row_id" in upd[4] and "last_name" in upd[4]
    assert dele[2] == victim and dele[3] is None and dele[4]["id"] == victim
    for e in entries:
        assert wait_settled(owner, e[0]) == "succeeded", sidecar.output()
    sent, created = query_rows(owner, "SELECT \"values\", api_id FROM salesforce._sync_write_log"
                                      " WHERE id = %s", (ins[0],))[0]
    assert sent == {"last_name": "Plain-Insert", "title": "T1"}
    assert [r["Id"] for r in sf_records(emulator, "SELECT Id FROM Contact WHERE LastName = 'Plain-Insert'")] \
        == [created]
    assert sf_records(emulator, f"SELECT Title FROM Contact WHERE Id = '{target}'")[0]["Title"] == "Plain-Update"
    assert sf_records(emulator, f"SELECT Id FROM Contact WHERE Id = '{victim}'") == []
    assert query_value(owner, "SELECT id FROM salesforce.contact WHERE last_name = 'Plain-Insert'")

    # a change in Salesforce comes back
    emulator.control("PATCH", f"records/Contact/{target}", {"Title": "From-Salesforce"})
    wait_for(lambda: query_value(owner, "SELECT title FROM salesforce.contact WHERE id = %s", (target,))
             == "From-Salesforce", timeout=120, what="a poll through sequin-sf")


def test_plain_capture_refuses_and_cannot_be_bypassed_by_applications(plain):
    emulator, cluster, owner, app, sidecar, key = plain
    some = query_value(owner, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
    # Salesforce's rules, worded as the extension words them
    with pytest.raises(psycopg.errors.GeneratedAlways) as err:
        app.execute("UPDATE salesforce.contact SET name = 'x' WHERE id = %s", (some,))
    assert 'column "name" of salesforce.contact cannot be written' in str(err.value)
    with pytest.raises(psycopg.errors.FeatureNotSupported) as err:
        app.execute("UPDATE salesforce.contact SET _row_id = DEFAULT WHERE id = %s", (some,))
    assert "may not change _row_id" in str(err.value)
    # the application cannot write the log, nor skip capture with sequin-sf's setting
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("DELETE FROM salesforce._sync_write_log")
    app.execute("SET sequin_sf.applying = on")
    app.execute("UPDATE salesforce.contact SET title = 'Not-Bypassed' WHERE id = %s", (some,))
    log_id = query_value(owner, "SELECT max(id) FROM salesforce._sync_write_log WHERE api_id = %s", (some,))
    assert log_id and wait_settled(owner, log_id) == "succeeded"
    assert sf_records(emulator, f"SELECT Title FROM Contact WHERE Id = '{some}'")[0]["Title"] == "Not-Bypassed"
    # an UPDATE that changes nothing logs nothing
    before = query_value(owner, "SELECT count(*) FROM salesforce._sync_write_log")
    app.execute("UPDATE salesforce.contact SET title = title")
    assert query_value(owner, "SELECT count(*) FROM salesforce._sync_write_log") == before
    # nor does writing the capture's own settings hide a change, move another
    # transaction's entries, or reach SQL: a statement made to look nested is logged
    # all the same, and a held list naming a settled entry and a crafted schema moves
    # nothing
    with app.transaction():
        app.execute("SELECT set_config('sequin_sf.capture_frames', '{0}', true)")
        app.execute("UPDATE salesforce.contact SET title = 'Seen-Anyway' WHERE id = %s", (some,))
    hidden = query_value(owner, "SELECT max(id) FROM salesforce._sync_write_log WHERE api_id = %s", (some,))
    assert hidden > log_id and wait_settled(owner, hidden) == "succeeded"
    with app.transaction():
        app.execute("SELECT set_config('sequin_sf.capture_held', %s, true)",
                    ('[{"depth": 2, "schema": "salesforce", "id": %d},'
                     ' {"depth": 2, "schema": "x; DROP TABLE salesforce.contact; --", "id": 1}]' % log_id,))
        app.execute("UPDATE salesforce.contact SET title = 'Moved-Nothing' WHERE id = %s", (some,))
    assert query_value(owner, "SELECT state FROM salesforce._sync_write_log WHERE id = %s", (log_id,)) == "succeeded"
    assert query_value(owner, "SELECT count(*) FROM salesforce.contact") > 0


def test_credentials_are_sealed_by_sequin_sf_and_the_key_rotates(plain, tmp_path):
    emulator, cluster, owner, app, sidecar, key = plain
    # SQL cannot take a secret here: the database would see it in clear
    with pytest.raises(psycopg.errors.FeatureNotSupported) as err:
        owner.execute("SELECT sequin_sf.create_credential('other', kind => 'refresh_token',"
                      " login_url => %s, client_id => %s, client_secret => %s, refresh_token => %s)",
                      (emulator.base_url, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN))
    assert "sequin-sf credential create" in err.value.diag.message_hint
    # the same checks as create_credential
    done = sequin_sf_cli("credential", "create", "bad", "--kind", "password", "--login-url",
                         emulator.base_url, "--client-id", CLIENT_ID, "--database-url",
                         cluster.dsn(user="sync_owner"), "--key-file", key,
                         env={"SEQUIN_SF_CLIENT_SECRET": CLIENT_SECRET})
    assert done.returncode == 1 and "a password credential needs username, password" in done.stderr
    stored = query_value(owner, "SELECT secret FROM sequin_sf._credentials WHERE name = 'emu'")
    assert REFRESH_TOKEN.encode() not in bytes(stored) and CLIENT_SECRET.encode() not in bytes(stored)

    # rotation: sealed again under a new key, and a sequin-sf with that key runs the sync
    new_key = str(tmp_path / "new.key")
    assert sequin_sf_cli("key", "create", new_key).returncode == 0
    assert sequin_sf_cli("key", "create", new_key).returncode == 1  # never replaced
    sidecar.stop()
    done = sequin_sf_cli("credential", "rotate-key", "--new-key-file", new_key, "--database-url",
                         cluster.dsn(user="sync_owner"), "--key-file", key)
    assert done.returncode == 0, done.stderr
    assert "1 credential(s) sealed again" in done.stdout
    hex_key = open(new_key, "rb").read().hex()
    rotated = Sidecar(cluster.dsn(user="sync_owner"), None, env={"SEQUIN_SF_KEY": hex_key})
    try:
        app.execute("INSERT INTO salesforce.contact (last_name) VALUES ('After-Rotation')")
        log_id = query_value(owner, "SELECT max(id) FROM salesforce._sync_write_log")
        assert wait_settled(owner, log_id) == "succeeded", rotated.output()
    finally:
        rotated.stop(signal.SIGKILL)


def test_external_id_settings_use_the_fields_sequin_sf_read(plain):
    emulator, cluster, owner, app, sidecar, key = plain
    owner.execute("SELECT sequin_sf.alter_write_settings('emu',"
                  " external_id_fields => '{\"Contact\": \"External_Id__c\"}')")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        owner.execute("SELECT sequin_sf.alter_write_settings('emu',"
                      " external_id_fields => '{\"Contact\": \"LastName\"}')")
    assert "is not marked External ID" in str(err.value)


def test_the_org_catalog_is_fresh_for_few_calls(plain):
    """SQL reads the org's objects and fields from tables beside the database. A synced
    object's fields come from the sync's own describes: a field made an external id in
    Salesforce is usable in a write setting once the sync sees it (no hourly describe of
    every synced object). The object list is read again only when SQL needs one over a
    minute old: then sequin-sf is asked, and the answer waits for it."""
    emulator, cluster, owner, app, sidecar, key = plain

    def global_describes():
        return emulator.stats()["endpoints"].get("describe_global", 0)

    def catalog_requests():
        """What sequin-sf's /metrics counts of its own reads of the org."""
        return next(s.value for f in text_string_to_metric_families(sidecar.get("/metrics")[1])
                    for s in f.samples if s.name == "sequin_sf_sidecar_org_catalog_requests_total")

    def collections():
        return [r[0] for r in query_rows(owner, "SELECT name FROM sequin_sf.available_collections('emu')")]

    assert "Contact" in collections()  # (listed again here if the fixture's list is old)
    listed, counted = global_describes(), catalog_requests()
    # the sync described its objects itself: sequin-sf has at most listed the org
    assert counted <= 1
    emulator.control("POST", "schema/objects", {"name": "Gadget__c"})
    assert "Gadget__c" not in collections()
    assert global_describes() == listed
    owner.execute("UPDATE sequin_sf._org_objects_read SET read_at = now() - interval '2 minutes'")
    assert "Gadget__c" in collections()
    assert global_describes() == listed + 1
    wait_for(lambda: catalog_requests() == counted + 1, what="the request counted in /metrics")
    assert "Gadget__c" in collections() and global_describes() == listed + 1

    owner.execute("SELECT sequin_sf.alter_sync('emu', describe_interval => '1 second')")
    emulator.control("POST", "schema/Contact/fields",
                     {"name": "Badge__c", "type": "string", "externalId": True, "unique": True})
    wait_for(lambda: query_value(owner, "SELECT external_id FROM sequin_sf._org_fields"
                                        " WHERE object_name = 'Contact' AND name = 'Badge__c'"),
             timeout=60, what="the new field recorded from the sync's describe")
    owner.execute("SELECT sequin_sf.alter_write_settings('emu',"
                  " external_id_fields => '{\"Contact\": \"Badge__c\"}')")


def test_naming_rules_match_the_library(plain):
    """_snake_case and _near_names are Rust in the extension and PL/pgSQL here: the same
    answers over tricky and long names."""
    emulator, cluster, owner, app, sidecar, key = plain
    names = ["FirstName", "AccountId", "Level__c", "Id", "OpportunityLineItem", "My_Object__c",
             "SLAExpirationDate__c", "SystemModstamp", "Location__Latitude__s", "ns__Field__c",
             "Address2Line", "URL", "HTTPRequest", "X1stPlace__c", "ÄpfelCount__c",
             "Very" * 20 + "A__c", "Very" * 20 + "B__c", "Ü" * 40 + "LongName__c"]
    names += [r[0] for r in query_rows(owner, "SELECT field_name FROM sequin_sf._columns")]
    objects = [r[0] for r in query_rows(owner, "SELECT name FROM sequin_sf._org_objects")]
    wanted = ["Contactt", "opp", "Acount", "Lead", "Zzz", "custom"]
    sql_snake = "SELECT n, sequin_sf._snake_case(n) FROM unnest(%s::text[]) n ORDER BY n"
    sql_near = "SELECT w, sequin_sf._near_names(w, %s) FROM unnest(%s::text[]) w ORDER BY w"
    library = Cluster()
    try:
        with library.connect() as c:
            c.execute("CREATE EXTENSION sequin_sf")
            assert query_rows(owner, sql_snake, (names,)) == query_rows(c, sql_snake, (names,))
            assert query_rows(owner, sql_near, (objects, wanted)) == \
                query_rows(c, sql_near, (objects, wanted))
    finally:
        library.destroy()


def test_install_again_by_a_superuser_adds_what_the_owner_could_not(plain):
    """The owner could not create the event trigger refusing inheritance of synced
    tables; `sequin-sf install` run by a role that may (here a superuser) adds it to the
    objects already installed, and changes nothing else."""
    emulator, cluster, owner, app, sidecar, key = plain
    assert query_value(owner, "SELECT count(*) FROM pg_event_trigger"
                              " WHERE evtname = 'sequin_sf_refuse_inheritance'") == 0
    again = sequin_sf_cli("install", "--database-url", cluster.dsn(user="sync_owner"))
    assert again.returncode == 0 and "may not create event triggers" in again.stderr
    done = sequin_sf_cli("install", "--database-url", cluster.dsn())
    assert done.returncode == 0, done.stderr
    assert query_value(owner, "SELECT count(*) FROM sequin_sf._release") == 1
    with cluster.connect() as su:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as err:
            su.execute("CREATE TABLE public.child () INHERITS (salesforce.contact)")
    assert "cannot take part in inheritance" in str(err.value)


def test_capture_is_a_function_per_table_made_again_with_its_capture(plain):
    emulator, cluster, owner, app, sidecar, key = plain

    def functions():
        return sorted(query_rows(
            owner, "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner), l.lanname"
                   " FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                   " WHERE p.pronamespace = 'salesforce'::regnamespace"
                   " AND p.proname LIKE '\\_sync\\_capture\\_%%'"))

    oids = {t: query_value(owner, f"SELECT 'salesforce.{t}'::regclass::oid") for t in ("contact", "account")}
    found = functions()
    assert [f[0] for f in found] == sorted(
        f"_sync_capture_{op}_{oid}" for op in ("insert", "update", "delete") for oid in oids.values())
    # each runs as sequin-sf's role, which alone may write the log
    assert {f[1:] for f in found} == {(True, "sync_owner", "plpgsql")}
    triggers = dict(query_rows(
        owner, "SELECT t.tgname, p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
               " WHERE t.tgrelid = 'salesforce.contact'::regclass AND t.tgname LIKE '\\_sync\\_write\\_%%'"))
    for op in ("insert", "update", "delete"):
        assert triggers[f"_sync_write_{op}"] == f"_sync_capture_{op}_{oids['contact']}"

    # capture installed again (a write setting that changes the rules): made again, the
    # same functions and no more, the rule taking effect
    tier = query_value(owner, "SELECT column_name FROM information_schema.columns"
                              " WHERE table_schema = 'salesforce' AND table_name = 'account'"
                              " AND column_name LIKE 'tier%%'")
    some = query_value(owner, "SELECT id FROM salesforce.account LIMIT 1")
    with pytest.raises(psycopg.errors.CheckViolation):
        app.execute(f"UPDATE salesforce.account SET {tier} = 'Platinum' WHERE id = %s", (some,))
    owner.execute("SELECT sequin_sf.alter_write_settings('emu', check_picklists => false)")
    assert functions() == found
    app.execute(f"UPDATE salesforce.account SET {tier} = 'Platinum' WHERE id = %s", (some,))
    logged = query_rows(owner, "SELECT \"values\" FROM salesforce._sync_write_log"
                               " WHERE api_id = %s ORDER BY id DESC LIMIT 1", (some,))
    assert logged == [({tier: "Platinum"},)]
    owner.execute("SELECT sequin_sf.alter_write_settings('emu', check_picklists => true)")

    # a collection removed: its table's functions go with it
    owner.execute("SELECT sequin_sf.remove_collection('emu', 'Account')")
    assert [f[0] for f in functions()] == sorted(
        f"_sync_capture_{op}_{oids['contact']}" for op in ("insert", "update", "delete"))

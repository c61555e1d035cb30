"""Write settings that name Salesforce fields work the moment a sync exists: they are
checked against the org (a describe made in the call), not against sequin_sf.columns,
which the sync's worker fills only once it has set a collection up. Scripts that run
create_sync and alter_write_settings back to back, or in one transaction, must work,
and a field that is not there, or not an external id, must still be refused at once."""

import psycopg
import pytest

from harness import SIDECAR_MODE, Cluster, Emulator, create_emulator_credential, query_value, wait_for

EXT_CONTACT = '{"Contact": "External_Id__c"}'


@pytest.fixture(scope="module")
def org():
    emu = Emulator("--seed", "3", "--generate", "Account=5,Contact=5")
    cluster = Cluster()
    conn = cluster.connect()
    try:
        cluster.install(conn)
        create_emulator_credential(conn, emu)
        yield emu, cluster, conn
    finally:
        conn.close()
        cluster.destroy()
        emu.stop()


def columns_of(conn, sync):
    return query_value(conn, "SELECT count(*) FROM sequin_sf.columns WHERE sync_name = %s", (sync,))


def settings_of(conn, sync):
    return query_value(
        conn,
        "SELECT w.external_id_fields FROM sequin_sf.write_settings w"
        " JOIN sequin_sf.syncs s ON s.schema_name = w.schema_name WHERE s.name = %s",
        (sync,),
    )


def test_external_id_setting_is_accepted_right_after_create_sync(org):
    # the sync is paused as it is created, so its worker cannot set the collections up
    # before the setting is given: the window a setup script hits every time (beside the
    # database, the setting waits for sequin-sf to describe the object, which it does
    # for a paused sync too)
    _, _, conn = org
    with conn.transaction():
        conn.execute(
            "SELECT sequin_sf.create_sync('back_to_back', credential => 'emu',"
            " collections => ARRAY['Account','Contact'], schema_name => 'sf_b2b')"
        )
        conn.execute("SELECT sequin_sf.pause_sync('back_to_back')")
    conn.execute(
        "SELECT sequin_sf.alter_write_settings('back_to_back', external_id_fields => %s)",
        (EXT_CONTACT,),
    )
    assert columns_of(conn, "back_to_back") == 0, "the worker set the sync up first"
    assert settings_of(conn, "back_to_back") == {"Contact": "External_Id__c"}


@pytest.mark.extension_only("beside the database the fields are read by sequin-sf first, after"
                             " the transaction commits (test_plain.py)")
def test_external_id_setting_is_accepted_in_the_transaction_of_create_sync(org):
    _, _, conn = org
    with conn.transaction():
        conn.execute(
            "SELECT sequin_sf.create_sync('one_tx', credential => 'emu',"
            " collections => ARRAY['Account','Contact'], schema_name => 'sf_one_tx')"
        )
        conn.execute(
            "SELECT sequin_sf.alter_write_settings('one_tx', external_id_fields =>"
            ' \'{"Contact": "External_Id__c", "Account": "External_Key__c"}\')'
        )
        conn.execute("SELECT sequin_sf.pause_sync('one_tx')")
    assert settings_of(conn, "one_tx") == {
        "Contact": "External_Id__c",
        "Account": "External_Key__c",
    }


@pytest.mark.parametrize(
    "fields, message, hint",
    [
        # misspelt field
        ('{"Contact": "External_Idd__c"}', "Contact.External_Idd__c is not a field of Contact",
         "External_Id__c"),
        # a real field, but not an external id
        ('{"Contact": "Email"}', "Contact.Email is not marked External ID", "External_Id__c"),
        # a field of another object
        ('{"Contact": "External_Key__c"}', "Contact.External_Key__c is not a field of Contact",
         "External_Id__c"),
        # an object the sync does not mirror
        ('{"Lead": "External_Id__c"}', '"Lead" is not a collection of sync', "Account, Contact"),
        # the field is not a string
        ('{"Contact": 7}', "the field of Contact must be a string", "External_Id__c"),
    ],
)
def test_external_id_setting_refuses_what_is_not_an_external_id_at_once(org, fields, message, hint):
    _, _, conn = org
    if not query_value(conn, "SELECT count(*) FROM sequin_sf.syncs WHERE name = 'refusals'"):
        conn.execute(
            "SELECT sequin_sf.create_sync('refusals', credential => 'emu',"
            " collections => ARRAY['Account','Contact'], schema_name => 'sf_refusals')"
        )
        conn.execute("SELECT sequin_sf.pause_sync('refusals')")
    if SIDECAR_MODE:
        # beside the database, refusals come once sequin-sf has described the objects
        wait_for(lambda: query_value(
            conn, "SELECT count(DISTINCT object_name) FROM sequin_sf._org_fields"
            " WHERE object_name IN ('Account', 'Contact')") == 2, what="the objects described")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        conn.execute(
            "SELECT sequin_sf.alter_write_settings('refusals', external_id_fields => %s)",
            (fields,),
        )
    assert message in str(err.value)
    assert hint in (err.value.diag.message_hint or "")
    assert settings_of(conn, "refusals") == {}

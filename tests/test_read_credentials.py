"""End to end: the credential kinds not covered by test_read_sync.py (JWT bearer and
client credentials) log in through the extension, back a sync, and fill its tables; a
wrong JWT key is refused at create_sync with a clear error."""

import subprocess

import psycopg
import pytest

from harness import CLIENT_ID, CLIENT_SECRET, USERNAME, query_rows, sf_records, wait_backfilled

FIELDS = ["Id", "Name", "BillingCity"]


def rsa_key_pair(directory, name):
    """A throwaway RSA key pair made with the openssl CLI: (private PKCS#8 PEM text,
    path of the public key PEM file for the emulator's --jwt-public-key)."""
    private = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", str(private)],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
        check=True, capture_output=True,
    )
    return private.read_text(), str(public)


def create_sync(db, credential):
    db.execute(
        "SELECT sequin_sf.create_sync('emu', credential => %s, collections => ARRAY['Account'],"
        " rate_limit_requests => 100000)",
        (credential,),
    )


def assert_accounts_match(db, emulator):
    """The synced account table holds exactly what the emulator's REST API returns."""
    expected = {
        r["Id"]: (r["Name"], r["BillingCity"])
        for r in sf_records(emulator, f"SELECT {', '.join(FIELDS)} FROM Account")
    }
    got = {r[0]: (r[1], r[2]) for r in query_rows(db, "SELECT id, name, billing_city FROM salesforce.account")}
    assert len(expected) == 30
    assert got == expected


def test_read_jwt_bearer_credential_backfills(start_emulator, db, tmp_path):
    private_pem, public_path = rsa_key_pair(tmp_path, "jwt")
    emulator = start_emulator("--seed", "3", "--generate", "Account=30", "--jwt-public-key", public_path)
    db.execute(
        "SELECT sequin_sf.create_credential('jwt', kind => 'jwt_bearer', login_url => %s,"
        " client_id => 'sequin-emulator', username => %s, private_key => %s)",
        (emulator.base_url, USERNAME, private_pem),
    )
    create_sync(db, "jwt")
    wait_backfilled(db, "emu")
    assert_accounts_match(db, emulator)


def test_read_client_credentials_backfills(start_emulator, db):
    emulator = start_emulator("--seed", "4", "--generate", "Account=30")
    db.execute(
        "SELECT sequin_sf.create_credential('cc', kind => 'client_credentials', login_url => %s,"
        " client_id => %s, client_secret => %s)",
        (emulator.base_url, CLIENT_ID, CLIENT_SECRET),
    )
    create_sync(db, "cc")
    wait_backfilled(db, "emu")
    assert_accounts_match(db, emulator)


def test_read_jwt_with_wrong_private_key_fails_at_create_sync(start_emulator, db, tmp_path):
    _, public_path = rsa_key_pair(tmp_path, "trusted")
    other_private, _ = rsa_key_pair(tmp_path, "other")
    emulator = start_emulator("--seed", "3", "--generate", "Account=5", "--jwt-public-key", public_path)
    db.execute(
        "SELECT sequin_sf.create_credential('jwt', kind => 'jwt_bearer', login_url => %s,"
        " client_id => 'sequin-emulator', username => %s, private_key => %s)",
        (emulator.base_url, USERNAME, other_private),
    )
    with pytest.raises(psycopg.Error) as err:
        create_sync(db, "jwt")
    assert err.value.sqlstate == "28000"
    message = str(err.value)
    assert 'could not log in to Salesforce with credential "jwt"' in message
    assert "invalid_grant" in message
    # the private key never appears in the error
    assert "PRIVATE KEY" not in message
    assert query_rows(db, "SELECT name FROM sequin_sf.syncs") == []


def test_read_jwt_with_unparsable_private_key_is_refused(start_emulator, db):
    emulator = start_emulator("--seed", "3", "--generate", "Account=5")
    db.execute(
        "SELECT sequin_sf.create_credential('jwt', kind => 'jwt_bearer', login_url => %s,"
        " client_id => 'sequin-emulator', username => %s, private_key => 'not a pem key')",
        (emulator.base_url, USERNAME),
    )
    with pytest.raises(psycopg.Error) as err:
        create_sync(db, "jwt")
    message = str(err.value)
    assert "private key" in message.lower()
    assert "not a pem key" not in message

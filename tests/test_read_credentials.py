"""End to end: the credential kinds not covered by test_read_sync.py (JWT bearer and
client credentials) log in, back a sync, and fill its tables; a wrong JWT key is refused
with a clear error: at create_sync with the extension, by `sequin-sf credential create`
beside the database (where secrets never pass through SQL)."""

import subprocess

import psycopg
import pytest

from harness import (CLIENT_ID, CLIENT_SECRET, CLUSTERS, OWNER, SIDECAR_MODE, USERNAME, query_rows,
                     sequin_sf_cli, sf_records, wait_backfilled)

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


def make_credential(db, name, kind, emulator, tmp_path, username=None, client_secret=None,
                    private_key=None):
    """The credential as the mode makes it: sequin_sf.create_credential with the
    extension; `sequin-sf credential create` beside the database (the secrets in its
    environment, the key in a file). Returns the command's CompletedProcess, or None."""
    if not SIDECAR_MODE:
        named = {"username": username, "client_secret": client_secret, "private_key": private_key}
        given = {k: v for k, v in named.items() if v is not None}
        db.execute(
            "SELECT sequin_sf.create_credential(%s, kind => %s, login_url => %s, client_id => %s"
            + "".join(f", {k} => %s" for k in given) + ")",
            (name, kind, emulator.base_url, CLIENT_ID, *given.values()),
        )
        return None
    cluster = CLUSTERS[db.info.port]
    env = {}
    if client_secret is not None:
        env["SEQUIN_SF_CLIENT_SECRET"] = client_secret
    if private_key is not None:
        key = tmp_path / f"{name}-private.pem"
        key.write_text(private_key)
        env["SEQUIN_SF_PRIVATE_KEY_FILE"] = str(key)
    args = ["credential", "create", name, "--kind", kind, "--login-url", emulator.base_url,
            "--client-id", CLIENT_ID, "--database-url", cluster.dsn(OWNER, db.info.dbname),
            "--key-file", cluster.sidecar_key]
    if username is not None:
        args += ["--username", username]
    return sequin_sf_cli(*args, env=env)


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
    done = make_credential(db, "jwt", "jwt_bearer", emulator, tmp_path, username=USERNAME,
                           private_key=private_pem)
    assert done is None or done.returncode == 0, done.stderr
    create_sync(db, "jwt")
    wait_backfilled(db, "emu")
    assert_accounts_match(db, emulator)


def test_read_client_credentials_backfills(start_emulator, db, tmp_path):
    emulator = start_emulator("--seed", "4", "--generate", "Account=30")
    done = make_credential(db, "cc", "client_credentials", emulator, tmp_path,
                           client_secret=CLIENT_SECRET)
    assert done is None or done.returncode == 0, done.stderr
    create_sync(db, "cc")
    wait_backfilled(db, "emu")
    assert_accounts_match(db, emulator)


def test_read_jwt_with_wrong_private_key_fails_at_create_sync(start_emulator, db, tmp_path):
    _, public_path = rsa_key_pair(tmp_path, "trusted")
    other_private, _ = rsa_key_pair(tmp_path, "other")
    emulator = start_emulator("--seed", "3", "--generate", "Account=5", "--jwt-public-key", public_path)
    done = make_credential(db, "jwt", "jwt_bearer", emulator, tmp_path, username=USERNAME,
                           private_key=other_private)
    if SIDECAR_MODE:
        # sequin-sf logs in with it at once: stored, and the refusal said with what to do
        message = done.stdout + done.stderr
        assert "logging in failed" in message and "invalid_grant" in message
        assert "drop_credential('jwt')" in message
        assert "PRIVATE KEY" not in message
        return
    with pytest.raises(psycopg.Error) as err:
        create_sync(db, "jwt")
    assert err.value.sqlstate == "28000"
    message = str(err.value)
    assert 'could not log in to Salesforce with credential "jwt"' in message
    assert "invalid_grant" in message
    # the private key never appears in the error
    assert "PRIVATE KEY" not in message
    assert query_rows(db, "SELECT name FROM sequin_sf.syncs") == []


def test_read_jwt_with_unparsable_private_key_is_refused(start_emulator, db, tmp_path):
    emulator = start_emulator("--seed", "3", "--generate", "Account=5")
    done = make_credential(db, "jwt", "jwt_bearer", emulator, tmp_path, username=USERNAME,
                           private_key="not a pem key")
    if SIDECAR_MODE:
        message = done.stdout + done.stderr
        assert "logging in failed" in message
    else:
        with pytest.raises(psycopg.Error) as err:
            create_sync(db, "jwt")
        message = str(err.value)
    assert "private key" in message.lower()
    assert "not a pem key" not in message

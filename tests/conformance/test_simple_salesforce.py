"""Conformance: simple-salesforce (an unmodified, independently written Salesforce client
from PyPI) drives the emulator over https, the way it drives a real org.

simple-salesforce always builds `https://{domain}.salesforce.com` login URLs, so the
requests session used here routes *.salesforce.com to the emulator; everything after
login goes to the instance URL the emulator itself returned."""

import datetime as dt
import os
import subprocess
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceResourceNotFound,
)

from harness import CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME

API_VERSION = "59.0"


class LoginHostToEmulator(HTTPAdapter):
    """Sends requests for *.salesforce.com to the emulator (as a DNS entry would)."""

    def __init__(self, emulator_base):
        super().__init__()
        self.target = urlsplit(emulator_base)

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        if parts.hostname and parts.hostname.endswith("salesforce.com"):
            request.url = urlunsplit(
                (self.target.scheme, self.target.netloc, parts.path, parts.query, "")
            )
        return super().send(request, **kwargs)


@pytest.fixture
def tls_emulator(start_emulator, tls_cert, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_cert[0])
    key = tmp_path / "jwt.key"
    cert = tmp_path / "jwt.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=jwt", "-keyout", str(key), "-out", str(cert)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    emu = start_emulator(
        "--seed", "11", "--generate", "Account=40,Contact=2500",
        "--jwt-public-key", str(cert), tls=tls_cert,
    )
    assert emu.base_url.startswith("https://127.0.0.1:")
    emu.jwt_private_key = str(key)
    return emu


def session_for(emu):
    s = requests.Session()
    s.mount("https://", LoginHostToEmulator(emu.base_url))
    return s


def soap_client(emu):
    session = session_for(emu)
    session_id, instance = SalesforceLogin(
        username=USERNAME, password=PASSWORD, security_token="",
        sf_version=API_VERSION, session=session,
    )
    return Salesforce(session_id=session_id, instance=instance, version=API_VERSION,
                      session=session)


def test_logins_with_every_grant(tls_emulator):
    emu = tls_emulator
    # SOAP login (username + password)
    sf = soap_client(emu)
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 40

    # OAuth username-password grant
    sf = Salesforce(username=USERNAME, password=PASSWORD, consumer_key=CLIENT_ID,
                    consumer_secret=CLIENT_SECRET, domain="login", version=API_VERSION,
                    session=session_for(emu))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2500

    # JWT bearer grant, signed with the key whose certificate the emulator trusts
    sf = Salesforce(username=USERNAME, consumer_key=CLIENT_ID,
                    privatekey_file=emu.jwt_private_key, domain="login",
                    version=API_VERSION, session=session_for(emu))
    assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1

    # client credentials grant (My Domain host)
    sf = Salesforce(consumer_key=CLIENT_ID, consumer_secret=CLIENT_SECRET,
                    domain="acme.my", version=API_VERSION, session=session_for(emu))
    assert sf.query("SELECT Id FROM Account LIMIT 2")["totalSize"] == 2

    # wrong password: a clear authentication failure, no session
    with pytest.raises(SalesforceAuthenticationFailed):
        SalesforceLogin(username=USERNAME, password="wrong", security_token="",
                        sf_version=API_VERSION, session=session_for(emu))
    with pytest.raises(SalesforceAuthenticationFailed):
        Salesforce(username=USERNAME, password="wrong", consumer_key=CLIENT_ID,
                   consumer_secret=CLIENT_SECRET, domain="login", version=API_VERSION,
                   session=session_for(emu))


def test_describe(tls_emulator):
    sf = soap_client(tls_emulator)
    names = {o["name"] for o in sf.describe()["sobjects"]}
    for expected in ["Account", "Contact", "Lead", "Opportunity", "OpportunityLineItem",
                     "Case", "Task", "Event", "User", "Campaign", "Product2", "Order",
                     "RecordType"]:
        assert expected in names
    assert any(n.endswith("__c") for n in names), "a custom object is described"

    fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert fields["Id"]["type"] == "id"
    assert fields["LastName"]["nillable"] is False
    assert fields["MailingAddress"]["type"] == "address"
    assert fields["MailingCity"]["compoundFieldName"] == "MailingAddress"
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    assert fields["SystemModstamp"]["updateable"] is False
    assert any(f["custom"] for f in fields.values())
    assert any(f["externalId"] for f in fields.values())
    opp = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert opp["StageName"]["restrictedPicklist"] is True
    assert any(f["calculated"] for f in opp.values()), "a formula field exists"


def test_query_all_across_pages(tls_emulator):
    emu = tls_emulator
    sf = soap_client(emu)
    before = emu.stats()["endpoints"]
    result = sf.query_all("SELECT Id, LastName, Account.Name FROM Contact ORDER BY Id")
    assert result["totalSize"] == 2500
    ids = [r["Id"] for r in result["records"]]
    assert len(ids) == 2500 and len(set(ids)) == 2500
    assert ids == sorted(ids)
    assert all(len(i) == 18 and i.startswith("003") for i in ids)
    with_account = [r for r in result["records"] if r["Account"] is not None]
    assert with_account and with_account[0]["Account"]["attributes"]["type"] == "Account"
    after = emu.stats()["endpoints"]
    assert after.get("query_more", 0) - before.get("query_more", 0) >= 1, "pages followed"
    assert sf.api_usage["api-usage"].used > 0

    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT Id FORM Contact")
    assert bad.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT NoSuchField FROM Contact")
    assert bad.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_crud_upsert_updated_deleted(tls_emulator):
    sf = soap_client(tls_emulator)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)

    created = sf.Contact.create({"LastName": "Lovelace", "FirstName": "Ada",
                                 "Email": "ada@example.com"})
    assert created["success"] is True
    cid = created["id"]
    assert len(cid) == 18 and cid.startswith("003")
    got = sf.Contact.get(cid)
    assert got["LastName"] == "Lovelace" and got["Email"] == "ada@example.com"

    assert sf.Contact.update(cid, {"Title": "Countess"}) == 204
    assert sf.Contact.get(cid)["Title"] == "Countess"

    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Contact.create({"FirstName": "NoLastName"})
    assert missing.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.Contact.create({"LastName": "X", "Shoe_Size__c": 9})
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as readonly:
        sf.Contact.update(cid, {"SystemModstamp": "2020-01-01T00:00:00Z"})
    assert readonly.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    ext = f"ext-{cid}"
    first = sf.Contact.upsert(f"External_Id__c/{ext}", {"LastName": "Hopper"})
    assert first == 201
    second = sf.Contact.upsert(f"External_Id__c/{ext}", {"LastName": "Hopper2"})
    assert second in (200, 204)
    rows = sf.query(f"SELECT Id, LastName FROM Contact WHERE External_Id__c = '{ext}'")
    assert rows["totalSize"] == 1 and rows["records"][0]["LastName"] == "Hopper2"

    assert sf.Contact.delete(cid) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(cid)
    deleted_rows = sf.query_all(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{cid}'",
                                include_deleted=True)
    assert deleted_rows["records"][0]["IsDeleted"] is True
    assert sf.query(f"SELECT Id FROM Contact WHERE Id = '{cid}'")["totalSize"] == 0

    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    updated = sf.Contact.updated(start, end)
    assert cid in updated["ids"]
    deleted = sf.Contact.deleted(start, end)
    assert cid in [d["id"] for d in deleted["deletedRecords"]]


def test_sobject_collections_and_composite(tls_emulator):
    sf = soap_client(tls_emulator)
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "One"},
        {"attributes": {"type": "Contact"}, "FirstName": "Missing last name"},
        {"attributes": {"type": "Contact"}, "LastName": "Three"},
    ]}
    results = sf.restful("composite/sobjects", method="POST", json=body)
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    ok_ids = [results[0]["id"], results[2]["id"]]

    updates = {"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, "id": i, "Title": "Updated"} for i in ok_ids]}
    assert all(r["success"] for r in sf.restful("composite/sobjects", method="PATCH",
                                                json=updates))
    titles = sf.query(f"SELECT Title FROM Contact WHERE Id IN ('{ok_ids[0]}','{ok_ids[1]}')")
    assert {r["Title"] for r in titles["records"]} == {"Updated"}

    composite = {"allOrNone": False, "compositeRequest": [
        {"method": "POST", "url": f"/services/data/v{API_VERSION}/sobjects/Account",
         "referenceId": "acct", "body": {"Name": "Composite Co"}},
        {"method": "POST", "url": f"/services/data/v{API_VERSION}/sobjects/Contact",
         "referenceId": "ct", "body": {"LastName": "Ref", "AccountId": "@{acct.id}"}},
        {"method": "GET", "referenceId": "q",
         "url": f"/services/data/v{API_VERSION}/query?q=SELECT+Account.Name+FROM+Contact"
                "+WHERE+Id+=+'@{ct.id}'"},
    ]}
    out = sf.restful("composite", method="POST", json=composite)["compositeResponse"]
    assert [r["httpStatusCode"] for r in out] == [201, 201, 200]
    assert out[2]["body"]["records"][0]["Account"]["Name"] == "Composite Co"

    deleted = sf.restful("composite/sobjects", method="DELETE",
                         params={"ids": ",".join(ok_ids), "allOrNone": "false"})
    assert all(r["success"] for r in deleted)


def test_bulk2_query(tls_emulator):
    sf = soap_client(tls_emulator)
    lines = 0
    pages = 0
    for csv_page in sf.bulk2.Contact.query("SELECT Id, LastName, Email FROM Contact",
                                           max_records=1000):
        pages += 1
        rows = csv_page.strip().splitlines()
        assert rows[0] == '"Id","LastName","Email"'
        lines += len(rows) - 1
    assert lines == 2500
    assert pages == 3


def test_bulk2_ingest_reports_each_row(tls_emulator):
    sf = soap_client(tls_emulator)
    results = sf.bulk2.Contact.insert(
        records=[{"LastName": "Bulk One", "Email": "one@example.com"},
                 {"LastName": "", "Email": "nobody@example.com"},
                 {"LastName": "Bulk, Three", "Email": "three@example.com"}],
        wait=1,
    )
    assert len(results) == 1
    job = results[0]
    assert job["numberRecordsProcessed"] == 3
    assert job["numberRecordsFailed"] == 1
    ok = sf.bulk2.Contact.get_successful_records(job["job_id"]).strip().splitlines()
    assert ok[0].startswith('"sf__Id","sf__Created"')
    assert len(ok) == 3 and all('"true"' in line for line in ok[1:])
    failed = sf.bulk2.Contact.get_failed_records(job["job_id"]).strip().splitlines()
    assert len(failed) == 2 and "REQUIRED_FIELD_MISSING" in failed[1]
    rows = sf.query("SELECT Id FROM Contact WHERE LastName = 'Bulk, Three'")
    assert rows["totalSize"] == 1


def test_composite_all_or_none_rolls_back(tls_emulator):
    sf = soap_client(tls_emulator)
    before = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    composite = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"/services/data/v{API_VERSION}/sobjects/Account",
         "referenceId": "acct", "body": {"Name": "Rolled back"}},
        {"method": "POST", "url": f"/services/data/v{API_VERSION}/sobjects/Contact",
         "referenceId": "ct", "body": {"FirstName": "No last name", "AccountId": "@{acct.id}"}},
    ]}
    out = sf.restful("composite", method="POST", json=composite)["compositeResponse"]
    assert [r["httpStatusCode"] for r in out] == [400, 400]
    assert out[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert out[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == before


def test_expired_session_and_quota(start_emulator, tls_cert, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_cert[0])
    emu = start_emulator("--generate", "Account=3", "--api-limit", "6", tls=tls_cert)
    sf = soap_client(emu)
    sf.query("SELECT Id FROM Account")
    emu.control("POST", "expire_tokens")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")

    sf = soap_client(emu)
    with pytest.raises(SalesforceError) as exhausted:
        for _ in range(10):
            sf.query("SELECT Id FROM Account")
    assert exhausted.value.status == 403
    assert exhausted.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    used, limit = sf.api_usage["api-usage"].used, sf.api_usage["api-usage"].total
    assert limit == 6 and used >= 6


def test_bad_input_never_breaks_the_server(tls_emulator):
    emu = tls_emulator
    sf = soap_client(emu)
    base = f"{emu.base_url}/services/data/v{API_VERSION}"
    headers = {"Authorization": f"Bearer {sf.session_id}",
               "Content-Type": "application/json"}
    r = requests.post(f"{base}/sobjects/Contact", data="{not json", headers=headers)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    r = requests.get(f"{base}/sobjects/NoSuchObject__c/describe", headers=headers)
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"
    r = requests.get(f"{base}/sobjects/Contact/not-an-id", headers=headers)
    assert r.status_code in (400, 404)
    assert r.json()[0]["errorCode"] in ("MALFORMED_ID", "NOT_FOUND")
    too_many = {"records": [{"attributes": {"type": "Contact"}, "LastName": str(i)}
                            for i in range(201)]}
    r = requests.post(f"{base}/composite/sobjects", json=too_many, headers=headers)
    assert r.status_code == 400
    r = requests.get(f"{base}/query", params={"q": "SELECT Id FROM Contact"},
                     headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    # the server still answers normally afterwards
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 40


def test_ids_have_valid_checksums(tls_emulator):
    sf = soap_client(tls_emulator)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    for record in sf.query("SELECT Id FROM Contact LIMIT 50")["records"]:
        rid = record["Id"]
        suffix = ""
        for chunk in range(3):
            bits = 0
            for j, ch in enumerate(rid[chunk * 5:chunk * 5 + 5]):
                if "A" <= ch <= "Z":
                    bits |= 1 << j
            suffix += alphabet[bits]
        assert rid[15:] == suffix, rid


if os.environ.get("SF_CONFORMANCE_DEBUG"):
    import logging

    logging.basicConfig(level=logging.DEBUG)


# The seed-list objects the emulator models from Salesforce's documentation (facts and
# sources in crates/sf-emulator/src/catalog.txt): what the API lets a client do with
# each, and which cursor fields its describe holds.
SEED_OBJECTS = {
    # name: (createable, updateable, deletable, replicateable, fields present, absent)
    "AccountContactRelation": (True, True, True, True, ["SystemModstamp"], []),
    "Attachment": (True, True, True, True, ["SystemModstamp", "Body"], []),
    "CampaignMemberStatus": (True, True, True, True, ["SystemModstamp"], []),
    "CaseHistory": (False, False, False, True, ["CreatedDate", "NewValue"],
                    ["SystemModstamp", "LastModifiedDate"]),
    "ContentDocument": (False, True, True, False, ["SystemModstamp"], []),
    "ContentNote": (True, True, True, False, ["LastModifiedDate", "Content"],
                    ["SystemModstamp"]),
    "OpportunityFieldHistory": (False, False, False, True, ["CreatedDate"],
                                ["SystemModstamp", "LastModifiedDate"]),
    "OpportunityHistory": (False, False, False, True, ["CreatedDate", "SystemModstamp"],
                           ["LastModifiedDate"]),
    "OpportunityStage": (False, False, False, False, ["SystemModstamp"], ["IsDeleted"]),
    "Opportunity__hd": (False, False, False, True, ["CreatedDate"],
                        ["SystemModstamp", "LastModifiedDate"]),
    "Profile": (True, True, True, True, ["SystemModstamp"], ["IsDeleted"]),
    "UserRole": (True, True, True, True, ["SystemModstamp"], ["CreatedDate", "IsDeleted"]),
    "WorkOrder": (True, True, True, True, ["SystemModstamp"], []),
}
SEED_COUNTS = {"AccountContactRelation": 5, "Attachment": 4, "CampaignMemberStatus": 3,
               "CaseHistory": 6, "ContentDocument": 3, "ContentNote": 3,
               "OpportunityFieldHistory": 6, "OpportunityHistory": 6, "OpportunityStage": 4,
               "Opportunity__hd": 4, "Profile": 2, "UserRole": 3, "WorkOrder": 4}


def test_seed_objects_as_a_real_org_serves_them(start_emulator, tls_cert, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_cert[0])
    parents = "Account=5,Contact=10,Opportunity=10,Case=5,Campaign=2"
    spec = ",".join([parents] + [f"{o}={n}" for o, n in SEED_COUNTS.items()])
    emu = start_emulator("--seed", "5", "--generate", spec, tls=tls_cert)
    sf = soap_client(emu)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)

    listed = {o["name"]: o for o in sf.describe()["sobjects"]}
    for name, (create, update, delete, repl, present, absent) in SEED_OBJECTS.items():
        g = listed[name]
        assert (g["createable"], g["updateable"], g["deletable"], g["replicateable"],
                g["queryable"]) == (create, update, delete, repl, True), name
        d = getattr(sf, name).describe()
        assert (d["createable"], d["replicateable"]) == (create, repl), name
        fields = {f["name"] for f in d["fields"]}
        assert set(present) <= fields, (name, set(present) - fields)
        assert not set(absent) & fields, (name, set(absent) & fields)

        rows = sf.query_all(f"SELECT Id FROM {name}")
        assert rows["totalSize"] == SEED_COUNTS[name], name
        prefix = d["keyPrefix"]
        assert all(r["Id"].startswith(prefix) and len(r["Id"]) == 18
                   for r in rows["records"]), name

        if not create:
            with pytest.raises(SalesforceMalformedRequest) as refused:
                getattr(sf, name).create({"Name": "x"})
            assert refused.value.content[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"
        if repl:
            assert "ids" in getattr(sf, name).updated(start, end), name
        else:
            with pytest.raises(SalesforceMalformedRequest) as refused:
                getattr(sf, name).updated(start, end)
            assert refused.value.content[0]["errorCode"] == "INVALID_TYPE", name

    # A read-only history row refuses updates and deletes too.
    hist = sf.query("SELECT Id FROM CaseHistory LIMIT 1")["records"][0]["Id"]
    for call in (lambda: sf.CaseHistory.update(hist, {"Field": "Status"}),
                 lambda: sf.CaseHistory.delete(hist)):
        with pytest.raises(SalesforceMalformedRequest) as refused:
            call()
        assert refused.value.content[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"

    # Base64: /query and a record read give the blob's path, which serves the bytes.
    acct = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
    made = sf.Attachment.create({"ParentId": acct, "Name": "hello.txt",
                                 "Body": "aGVsbG8gd29ybGQ="})
    assert made["success"] is True
    body_path = sf.Attachment.get(made["id"])["Body"]
    assert body_path == f"/services/data/v{API_VERSION}/sobjects/Attachment/{made['id']}/Body"
    blob = sf.session.get(f"{emu.base_url}{body_path}",
                          headers={"Authorization": f"Bearer {sf.session_id}"})
    assert blob.status_code == 200 and blob.content == b"hello world"
    note = sf.query("SELECT Id, Content FROM ContentNote LIMIT 1")["records"][0]
    assert note["Content"].endswith(f"/sobjects/ContentNote/{note['Id']}/Content")

    # Bulk queries refuse base64 fields and read the rest, history rows included.
    with pytest.raises(SalesforceError) as refused:
        list(sf.bulk2.Attachment.query("SELECT Id, Body FROM Attachment", wait=0.1))
    assert "base64" in str(refused.value.content)
    pages = list(sf.bulk2.CaseHistory.query(
        "SELECT Id, CaseId, Field, CreatedDate FROM CaseHistory", wait=0.1))
    lines = [line for page in pages for line in page.strip().splitlines()[1:]]
    assert len(lines) == SEED_COUNTS["CaseHistory"]


def test_bulk_jobs_take_time_fail_and_queries_are_bounded(start_emulator, tls_cert,
                                                          monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_cert[0])
    emu = start_emulator("--generate", "Contact=300", "--bulk-job-ms", "1200", tls=tls_cert)
    sf = soap_client(emu)

    # simple-salesforce waits through UploadComplete and InProgress, polling job state;
    # every poll is an API request.
    before = emu.stats()["endpoints"].get("bulk2_query", 0)
    pages = list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0.2))
    assert sum(len(p.strip().splitlines()) - 1 for p in pages) == 300
    calls = emu.stats()["endpoints"]["bulk2_query"] - before
    assert calls >= 4, f"create, several polls, results: {calls}"

    # A job Salesforce fails: the client reports its errorMessage.
    emu.control("PUT", "limits", {"bulk_job_ms": 0})
    emu.control("POST", "faults", {"kind": "bulk_job_failed", "count": 1,
                                   "message": "Retried more than 15 times"})
    with pytest.raises(SalesforceOperationError) as failed:
        list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0.1))
    assert "Retried more than 15 times" in str(failed.value)
    emu.control("POST", "faults", {"kind": "bulk_job_aborted", "count": 1})
    with pytest.raises(SalesforceOperationError):
        list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0.1))

    # A query that runs too long; FIELDS(ALL) needs LIMIT 200 or less.
    emu.control("POST", "faults", {"kind": "query_timeout", "count": 1})
    with pytest.raises(SalesforceMalformedRequest) as slow:
        sf.query("SELECT Id FROM Contact")
    assert slow.value.content[0]["errorCode"] == "QUERY_TIMEOUT"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    with pytest.raises(SalesforceMalformedRequest) as unbounded:
        sf.query("SELECT FIELDS(ALL) FROM Contact")
    assert unbounded.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert len(sf.query("SELECT FIELDS(ALL) FROM Contact LIMIT 200")["records"]) == 200

    # Field-level security hides a field; an admin turns a text field into a picklist.
    emu.control("PATCH", "schema/Contact/fields/Title", {"hidden": True})
    assert "Title" not in {f["name"] for f in sf.Contact.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as hidden:
        sf.query("SELECT Title FROM Contact")
    assert hidden.value.content[0]["errorCode"] == "INVALID_FIELD"
    emu.control("POST", "schema/Contact/fields", {"name": "Tier__c", "type": "string"})
    emu.control("PATCH", "schema/Contact/fields/Tier__c",
                {"type": "picklist", "values": ["Gold", "Silver"]})
    tier = {f["name"]: f for f in sf.Contact.describe()["fields"]}["Tier__c"]
    assert tier["type"] == "picklist"
    assert [p["value"] for p in tier["picklistValues"]] == ["Gold", "Silver"]


def test_cross_object_formula_is_worked_out_at_read_time(tls_emulator):
    """A Contact formula reading its Account's Name follows a rename at once in every
    read, while the Contact's SystemModstamp stays put and /updated does not list it:
    the staleness an incremental sync must live with (see query::Formula)."""
    r = requests.post(f"{tls_emulator.base_url}/__emulator/schema/Contact/fields",
                      json={"name": "Account_Name__c", "type": "string",
                            "formula": "Account.Name"})
    assert r.status_code == 201, r.text
    sf = soap_client(tls_emulator)
    field = next(f for f in sf.Contact.describe()["fields"]
                 if f["name"] == "Account_Name__c")
    assert field["calculated"] is True and field["calculatedFormula"] == "Account.Name"
    assert field["createable"] is False and field["updateable"] is False

    acct = sf.Account.create({"Name": "Before Rename"})["id"]
    cid = sf.Contact.create({"LastName": "Formula", "AccountId": acct})["id"]
    before = sf.Contact.get(cid)
    assert before["Account_Name__c"] == "Before Rename"
    # getUpdated windows have whole seconds here: start after the Contact's stamp.
    time.sleep(1.1)
    start = dt.datetime.now(dt.timezone.utc)
    assert sf.Account.update(acct, {"Name": "After Rename"}) == 204

    after = sf.Contact.get(cid)
    assert after["Account_Name__c"] == "After Rename"
    assert after["SystemModstamp"] == before["SystemModstamp"]
    assert after["LastModifiedDate"] == before["LastModifiedDate"]
    rows = sf.query(f"SELECT Account_Name__c, SystemModstamp FROM Contact WHERE Id = '{cid}'")
    assert rows["records"][0]["Account_Name__c"] == "After Rename"
    assert rows["records"][0]["SystemModstamp"] == before["SystemModstamp"]
    pages = list(sf.bulk2.Contact.query(
        f"SELECT Id, Account_Name__c FROM Contact WHERE Id = '{cid}'"))
    assert pages[0].strip().splitlines()[1] == f'"{cid}","After Rename"'

    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)
    assert cid not in sf.Contact.updated(start, end)["ids"]
    assert acct in sf.Account.updated(start, end)["ids"]

    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Contact.update(cid, {"Account_Name__c": "Written"})
    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

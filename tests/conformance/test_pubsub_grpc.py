"""Conformance: the emulator's Pub/Sub API, driven the way a third-party Python client
drives Salesforce's: stubs generated at test time by grpcio-tools from the project's
proto (crates/pubsub/proto/pubsub_api.proto, Salesforce's eventbus.v1 contract), a TLS
channel with the session in the accesstoken/instanceurl/tenantid metadata, payloads
decoded by fastavro with the schema GetSchema returns, and changedFields decoded with
the bitmap rule of Salesforce's "Event Deserialization Considerations" (the binary
digits of the hex value read from the right: position i is bit i)."""

import importlib
import json
import os
import queue
import sys
import threading

import grpc
import pytest
import requests
from fastavro import parse_schema, schemaless_reader
from grpc_tools import protoc

from harness import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "crates", "pubsub", "proto")

LATEST, EARLIEST, CUSTOM = 0, 1, 2


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """The generated pubsub_api_pb2 and pubsub_api_pb2_grpc modules."""
    out = str(tmp_path_factory.mktemp("pubsub_stubs"))
    rc = protoc.main([
        "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
        f"--grpc_python_out={out}", os.path.join(PROTO_DIR, "pubsub_api.proto"),
    ])
    assert rc == 0, "grpcio-tools compiles the proto"
    sys.path.insert(0, out)
    try:
        return importlib.import_module("pubsub_api_pb2"), importlib.import_module("pubsub_api_pb2_grpc")
    finally:
        sys.path.remove(out)


class Org:
    def __init__(self, emu, cert):
        self.emu = emu
        self.cert = cert
        tok = requests.post(
            f"{emu.base_url}/services/oauth2/token", verify=cert,
            data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN},
        ).json()
        self.token = tok["access_token"]
        self.instance_url = tok["instance_url"]
        self.org_id = tok["id"].rstrip("/").split("/")[-2]
        self.pubsub_addr = emu.control("GET", "cdc")["pubsub"]

    def metadata(self, token=None):
        return (("accesstoken", token or self.token), ("instanceurl", self.instance_url),
                ("tenantid", self.org_id))

    def rest(self, method, path, body=None):
        r = requests.request(
            method, f"{self.instance_url}/services/data/v59.0/{path}", json=body, verify=self.cert,
            headers={"Authorization": f"Bearer {self.token}",
                     "Sforce-Call-Options": "client=conformance"},
        )
        assert r.status_code < 300, r.text
        return r.json() if r.content else None


@pytest.fixture
def org(start_emulator, tls_cert):
    emu = start_emulator("--pubsub-listen", "127.0.0.1:0", "--pubsub-keepalive-ms", "400",
                         "--cdc-objects", "Contact", tls=tls_cert)
    return Org(emu, tls_cert[0])


@pytest.fixture
def stub(org, pb):
    with open(org.cert, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(org.pubsub_addr, creds)
    yield pb[1].PubSubStub(channel)
    channel.close()


class Subscription:
    """A Subscribe call fed from a queue, as the sample clients do."""

    def __init__(self, pb, stub, org, topic, preset=LATEST, replay_id=b"", n=10):
        self.pb = pb
        self.requests = queue.Queue()
        self.requests.put(pb[0].FetchRequest(topic_name=topic, replay_preset=preset,
                                             replay_id=replay_id, num_requested=n))
        self.call = stub.Subscribe(iter(self.requests.get, None), metadata=org.metadata())

    def more(self, n):
        self.requests.put(self.pb[0].FetchRequest(num_requested=n))

    def next(self, timeout=5.0):
        box = []
        t = threading.Thread(target=lambda: box.append(next(self.call)), daemon=True)
        t.start()
        t.join(timeout)
        assert box, "a FetchResponse arrives in time"
        return box[0]

    def close(self):
        self.requests.put(None)
        self.call.cancel()


def decode(stub, org, pb, event, cache):
    sid = event.event.schema_id
    if sid not in cache:
        info = stub.GetSchema(pb[0].SchemaRequest(schema_id=sid), metadata=org.metadata())
        cache[sid] = (json.loads(info.schema_json), parse_schema(json.loads(info.schema_json)))
    raw, parsed = cache[sid]
    import io
    return raw, schemaless_reader(io.BytesIO(event.event.payload), parsed)


def bitmap_names(raw_schema, values):
    """Field names for a changedFields-style value, per Salesforce's documented rule."""
    fields = raw_schema["fields"]
    names = []
    for v in values:
        if "-" in v:
            parent, bits = v.split("-", 1)
            pf = fields[int(parent)]
            record = next(t for t in pf["type"] if isinstance(t, dict) or isinstance(t, str) and t != "null")
            if isinstance(record, str):  # a named type defined earlier in the schema
                record = next(f["type"][1] for f in fields if isinstance(f["type"], list)
                              and isinstance(f["type"][1], dict) and f["type"][1].get("name") == record)
            inner = record["fields"]
            binary = bin(int(bits, 16))[2:][::-1]
            names += [f"{pf['name']}.{inner[i]['name']}" for i, b in enumerate(binary) if b == "1"]
        else:
            binary = bin(int(v, 16))[2:][::-1]
            names += [fields[i]["name"] for i, b in enumerate(binary) if b == "1"]
    return names


def test_subscribe_decode_and_replay_over_tls(org, stub, pb):
    topic = stub.GetTopic(pb[0].TopicRequest(topic_name="/data/ContactChangeEvent"),
                          metadata=org.metadata())
    assert topic.can_subscribe and not topic.can_publish
    assert topic.tenant_guid == org.org_id

    sub = Subscription(pb, stub, org, "/data/ContactChangeEvent", n=2)
    created = org.rest("POST", "sobjects/Contact", {"LastName": "Hopper", "FirstName": "Grace"})
    org.rest("PATCH", f"sobjects/Contact/{created['id']}", {"Title": "Rear Admiral", "FirstName": None})
    cache = {}
    got = []
    while len(got) < 2:
        resp = sub.next()
        got += list(resp.events)
    assert len(got) == 2
    raw, create = decode(stub, org, pb, got[0], cache)
    header = create["ChangeEventHeader"]
    assert header["changeType"] == "CREATE"
    assert header["entityName"] == "Contact"
    assert header["recordIds"] == [created["id"]]
    assert header["changeOrigin"] == "com/salesforce/api/rest/59.0;client=conformance"
    assert create["Name"]["LastName"] == "Hopper"
    assert create["Name"]["FirstName"] == "Grace"

    raw, update = decode(stub, org, pb, got[1], cache)
    header = update["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE"
    assert sorted(bitmap_names(raw, header["changedFields"])) == [
        "LastModifiedDate", "Name.FirstName", "Title"]
    assert bitmap_names(raw, header["nulledFields"]) == ["Name.FirstName"]
    assert update["Title"] == "Rear Admiral"
    assert update["Email"] is None
    assert got[0].replay_id < got[1].replay_id

    # Two were asked for: the next response is a keepalive, empty, with the position.
    org.rest("POST", "sobjects/Contact", {"LastName": "Later"})
    keepalive = sub.next()
    assert len(keepalive.events) == 0
    assert keepalive.latest_replay_id == got[1].replay_id
    sub.more(5)
    later = sub.next()
    assert len(later.events) == 1
    sub.close()

    # Resume after the first event: the update and the later create come again.
    again = Subscription(pb, stub, org, "/data/ChangeEvents", preset=CUSTOM, replay_id=got[0].replay_id, n=5)
    replayed = []
    while len(replayed) < 2:
        replayed += list(again.next().events)
    assert [e.replay_id for e in replayed] == [got[1].replay_id, later.events[0].replay_id]
    again.close()


def test_documented_errors(org, stub, pb):
    with pytest.raises(grpc.RpcError) as bad_token:
        stub.GetTopic(pb[0].TopicRequest(topic_name="/data/ContactChangeEvent"),
                      metadata=org.metadata(token="00D000000000001!ARbogus"))
    assert bad_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    trailers = dict(bad_token.value.trailing_metadata())
    assert trailers["error-code"] == "sfdc.platform.eventbus.grpc.service.auth.error"
    assert "rpcId: " in bad_token.value.details()

    sub = Subscription(pb, stub, org, "/data/ContactChangeEvent", n=1)
    org.rest("POST", "sobjects/Contact", {"LastName": "Expiring"})
    event = sub.next().events[0]
    sub.close()
    org.emu.control("POST", "cdc/expire_replay_ids", {})
    expired = Subscription(pb, stub, org, "/data/ContactChangeEvent", preset=CUSTOM,
                           replay_id=event.replay_id, n=1)
    with pytest.raises(grpc.RpcError) as err:
        next(expired.call)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata())["error-code"] == \
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    expired.close()

    # A dropped stream surfaces as UNAVAILABLE, which clients retry.
    live = Subscription(pb, stub, org, "/data/ContactChangeEvent", n=1)
    org.rest("POST", "sobjects/Contact", {"LastName": "BeforeDrop"})
    assert len(live.next().events) == 1
    org.emu.control("POST", "cdc/drop_streams", {})
    with pytest.raises(grpc.RpcError) as dropped:
        while True:
            next(live.call)
    assert dropped.value.code() == grpc.StatusCode.UNAVAILABLE
    live.close()

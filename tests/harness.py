"""Real processes for end-to-end tests: the Salesforce emulator and a Postgres cluster
with sequin_sf preloaded. Nothing here mocks project code; tests talk to both over
loopback exactly as a user's application and Salesforce would."""

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import psycopg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR_BIN = os.environ.get(
    "SF_EMULATOR_BIN", os.path.join(ROOT, "target", "release", "sf-emulator")
)
CLUSTER_SCRIPT = os.path.join(ROOT, "scripts", "pg-cluster.sh")
# The binaries of the PostgreSQL major under test: `make test PG=N` sets PG_BIN to
# /opt/sequin-sf-pg/N/bin (scripts/install-pg.sh); Debian's 15 when run by hand.
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


def pg_major(bin_dir=PG_BIN):
    """The major version of the binaries in `bin_dir` (15, 16, ...; by default those
    under test)."""
    out = subprocess.run([f"{bin_dir}/pg_config", "--version"], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[1].split(".")[0])

# The suite runs in one of two modes (SEQUIN_SF_MODE): "extension" (default: the
# library preloaded, CREATE EXTENSION, the background worker runs the syncs) or
# "sidecar" (no library of ours loaded; `sequin-sf` installs the objects as the role
# OWNER, which has LOGIN and CREATE on the database only, and runs the syncs;
# credentials are made with `sequin-sf credential create`). Tests of what only the
# extension has (its worker, the server log, SQL credentials) are marked
# `extension_only`: conftest.py skips them in sidecar mode.
MODE = os.environ.get("SEQUIN_SF_MODE", "extension")
assert MODE in ("extension", "sidecar"), f"SEQUIN_SF_MODE={MODE}: extension or sidecar"
SIDECAR_MODE = MODE == "sidecar"
OWNER = "sync_owner"
# port -> Cluster, for helpers given only a connection
CLUSTERS = {}

CLIENT_ID = "sequin-emulator"
CLIENT_SECRET = "emulator-secret"
REFRESH_TOKEN = "emulator-refresh-token"
USERNAME = "admin@emulator.test"
PASSWORD = "emulator"


def wait_for(predicate, timeout=60.0, interval=0.2, what="condition"):
    """Polls until predicate() returns a truthy value, which is returned. The timeout is
    generous on purpose: it only bounds a hang, it never asserts on speed."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # the condition may not be checkable yet
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def free_port():
    """A loopback port nothing listens on, for a server the harness starts. Taken from a
    range of this pytest-xdist worker's own, below the kernel's ephemeral range (where
    emulators and client sockets get theirs): two workers never pick the same port, and
    none is handed to someone else between this check and the server's bind."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    first = 12000 + 4000 * (worker % 5)
    for port in random.sample(range(first, first + 4000), 400):
        if port in CLUSTERS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{first + 3999}")


class Emulator:
    """An sf-emulator process. `extra_args` are passed to its command line."""

    def __init__(self, *extra_args, tls=None):
        args = [EMULATOR_BIN, "--listen", "127.0.0.1:0", *extra_args]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.output = []
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        seen = []
        for line in self.proc.stdout:  # ends when the process exits
            if line.startswith("listening on "):
                break
            seen.append(line)
        else:
            self.stop()
            raise RuntimeError("emulator did not start:\n" + "".join(seen))
        self.base_url = line.strip().split("listening on ", 1)[1]
        # keep draining its output so a chatty emulator never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()
        self._ssl_context = None
        if tls:
            import ssl

            self._ssl_context = ssl.create_default_context(cafile=tls[0])

    def _drain(self):
        for line in self.proc.stdout:
            self.output.append(line)
            del self.output[:-200]

    def control(self, method, path, body=None):
        """Calls the emulator's control API (/__emulator/...) and returns parsed JSON."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base_url}/__emulator/{path.lstrip('/')}", data=data, method=method
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=120, context=self._ssl_context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise AssertionError(
                f"control {method} {path} failed: {err.code} {err.read().decode()}"
            ) from None
        return json.loads(raw) if raw else None

    def stats(self):
        return self.control("GET", "stats")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Cluster:
    """A Postgres cluster (of PG_BIN's version) owned by the postgres user with sequin_sf preloaded.
    `settings` ({name: value}, values as postgresql.conf spells them) are added to its
    postgresql.conf when it is created and override the defaults of scripts/pg-cluster.sh,
    e.g. {"shared_preload_libraries": "''"} for a plain Postgres without sequin_sf.
    `bin_dir` runs another installed major than PG_BIN's; `initdb_args` are added to
    initdb's command line."""

    def __init__(self, database="postgres", settings=None, bin_dir=None, initdb_args=()):
        self.bin_dir = bin_dir or PG_BIN
        self.initdb_args = " ".join(initdb_args)
        self.dir = tempfile.mkdtemp(prefix="sequin-sf-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.datadir = os.path.join(self.dir, "data")
        self.port = free_port()
        self.database = database
        if SIDECAR_MODE:
            settings = {"shared_preload_libraries": "''", **(settings or {})}
        self.settings = [f"{k}={v}" for k, v in (settings or {}).items()]
        self.sidecar = None
        self.sidecar_key = None
        CLUSTERS[self.port] = self
        self.start()

    @property
    def log_path(self):
        return os.path.join(self.datadir, "server.log")

    def _script_env(self):
        return {**os.environ, "PG_BIN": self.bin_dir, "INITDB_ARGS": self.initdb_args}

    def start(self):
        subprocess.run(
            [CLUSTER_SCRIPT, "start", self.datadir, str(self.port), self.database,
             *self.settings],
            check=True, env=self._script_env(),
        )

    def stop(self, mode="fast"):
        if mode == "fast":
            subprocess.run([CLUSTER_SCRIPT, "stop", self.datadir], check=True,
                           env=self._script_env())
        else:
            subprocess.run(
                ["sudo", "-u", "postgres", f"{self.bin_dir}/pg_ctl", "-D",
                 self.datadir, "-m", mode, "-w", "stop"],
                check=True, stdout=subprocess.DEVNULL,
            )

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def dsn(self, user="postgres", dbname=None):
        return f"host=127.0.0.1 port={self.port} user={user} dbname={dbname or self.database}"

    def connect(self, user="postgres", dbname=None):
        return psycopg.connect(self.dsn(user, dbname), autocommit=True)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill_sync_process(self, conn, sync=None):
        """kill -9 of what runs `sync`: the extension's worker (the postmaster starts it
        again), or the cluster's sequin-sf, started again as its supervisor would."""
        if not self.sidecar:
            os.kill(worker_pid(conn, sync), signal.SIGKILL)
            return
        self.sidecar.stop(signal.SIGKILL)
        self.sidecar = Sidecar(self.dsn(OWNER, conn.info.dbname), self.sidecar_key)

    def sync_log(self):
        """What the syncs logged: the server log (the extension's worker writes there),
        and in sidecar mode the output of the cluster's `sequin-sf` too."""
        return self.log() + (self.sidecar.output() if self.sidecar else "")

    def crashes(self):
        """Server log lines of a server process that died of a signal: a crash of a
        backend or worker, which restarts the whole server. SIGKILL (9) is left out:
        tests send it on purpose."""
        if not os.path.exists(self.log_path):
            return []
        return [line for line in self.log().splitlines()
                if "terminated by signal" in line and "terminated by signal 9:" not in line]

    def install(self, conn):
        """sequin_sf in the database of `conn`, as the mode has it: CREATE EXTENSION, or
        the role OWNER and a `sequin-sf` running as it (which installs the objects)."""
        if not SIDECAR_MODE:
            conn.execute("CREATE EXTENSION IF NOT EXISTS sequin_sf")
            return
        if self.sidecar is None:
            dbname = conn.info.dbname
            conn.execute(f"DO $$ BEGIN CREATE ROLE {OWNER} LOGIN;"
                         f" EXCEPTION WHEN duplicate_object THEN NULL; END $$")
            conn.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO {OWNER}')
            self.sidecar_key = os.path.join(self.dir, "sequin-sf.key")
            done = sequin_sf_cli("key", "create", self.sidecar_key)
            assert done.returncode == 0, done.stderr
            self.sidecar = Sidecar(self.dsn(OWNER, dbname), self.sidecar_key)
            wait_for(lambda: query_value(conn, "SELECT to_regclass('sequin_sf._release') IS NOT NULL"),
                     timeout=60, what="sequin-sf installing its objects")

    def destroy(self):
        if self.sidecar:
            self.sidecar.stop(signal.SIGKILL)
        CLUSTERS.pop(self.port, None)
        self.stop()
        if os.environ.get("KEEP_CLUSTER_LOG"):
            shutil.copy(self.log_path, os.environ["KEEP_CLUSTER_LOG"])
        crashed = self.crashes()
        context = ""
        if crashed:
            lines = self.log().splitlines()
            at = lines.index(crashed[0])
            context = "\n".join(lines[max(0, at - 40):at + 1])
        shutil.rmtree(self.dir, ignore_errors=True)
        # every test's cluster goes through here: no input of any test may crash a process
        assert not crashed, "a server process crashed:\n" + context


def make_tls_cert(directory):
    """A throwaway self-signed certificate for 127.0.0.1 (clients trust it explicitly)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return cert, key


def query_rows(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def query_value(conn, sql, params=None):
    rows = query_rows(conn, sql, params)
    return rows[0][0] if rows else None


def create_emulator_credential(conn, emulator, name="emu"):
    if SIDECAR_MODE:
        cluster = CLUSTERS[conn.info.port]
        create_sidecar_credential(cluster.dsn(OWNER, conn.info.dbname), cluster.sidecar_key,
                                  emulator, name)
        return name
    conn.execute(
        "SELECT sequin_sf.create_credential(%s, kind => 'refresh_token', login_url => %s,"
        " client_id => %s, client_secret => %s, refresh_token => %s)",
        (name, emulator.base_url, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN),
    )
    return name


def wait_backfilled(conn, sync, timeout=180):
    """Waits until every collection of `sync` has finished its backfill."""

    def done():
        pending = query_value(
            conn,
            "SELECT count(*) FROM sequin_sf.sync_status WHERE sync_name = %s"
            " AND state <> 'live'",
            (sync,),
        )
        total = query_value(
            conn, "SELECT count(*) FROM sequin_sf.sync_status WHERE sync_name = %s", (sync,)
        )
        return total and pending == 0

    wait_for(done, timeout=timeout, what=f"backfill of sync {sync}")


def wait_settled(conn, log_id):
    """The state of salesforce._sync_write_log entry `log_id` once it is settled."""
    def settled():
        state = query_value(
            conn, "SELECT state FROM salesforce._sync_write_log WHERE id = %s", (log_id,))
        return state if state in ("succeeded", "failed") else None

    return wait_for(settled, timeout=120, what=f"write-log entry {log_id} settled")


def sf_records(emulator, soql, query_all=False):
    """Every record a SOQL query returns from the emulator's REST API (following
    nextRecordsUrl), as a user's own client would read them."""
    import urllib.parse

    form = urllib.parse.urlencode({
        "grant_type": "refresh_token", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
    }).encode()
    with urllib.request.urlopen(
        urllib.request.Request(f"{emulator.base_url}/services/oauth2/token", data=form),
        timeout=60, context=emulator._ssl_context,
    ) as resp:
        token = json.loads(resp.read())["access_token"]
    resource = "queryAll" if query_all else "query"
    url = f"{emulator.base_url}/services/data/v61.0/{resource}?q={urllib.parse.quote(soql)}"
    out = []
    while url:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=60, context=emulator._ssl_context) as resp:
            page = json.loads(resp.read())
        out.extend(page["records"])
        nxt = page.get("nextRecordsUrl")
        url = f"{emulator.base_url}{nxt}" if nxt and not page.get("done") else None
    return out


def worker_pid(conn, sync=None):
    """The pid of the worker running `sync` (by default: of the first sync's worker)."""
    return query_value(
        conn,
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sequin_sf sync'"
        " AND (%s::text IS NULL OR application_name = 'sequin_sf sync ' || %s)"
        " ORDER BY backend_start LIMIT 1",
        (sync, sync),
    )


def supervisor_pid(conn):
    """The pid of the database's worker, which starts one worker per sync."""
    return query_value(
        conn, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sequin_sf'"
    )


@contextlib.contextmanager
def synced_org(emulator_args, sync, collections, **create_args):
    """An emulator started with `emulator_args`, a cluster with the extension, a
    credential for the emulator and a sync of `collections`, backfilled; yields
    (emulator, cluster, autocommit connection) and takes it all down afterwards.
    `create_args` are more create_sync arguments by name."""
    emu = Emulator(*emulator_args)
    cluster = Cluster()
    conn = cluster.connect()
    try:
        cluster.install(conn)
        create_emulator_credential(conn, emu)
        extra = "".join(f", {k} => %s" for k in create_args)
        conn.execute(
            f"SELECT sequin_sf.create_sync(%s, credential => 'emu', collections => %s{extra})",
            (sync, list(collections), *create_args.values()),
        )
        wait_backfilled(conn, sync, timeout=300)
        yield emu, cluster, conn
    finally:
        conn.close()
        cluster.destroy()
        emu.stop()


SIDECAR_BIN = os.environ.get(
    "SEQUIN_SF_SIDECAR_BIN", os.path.join(ROOT, "target", "release", "sequin-sf")
)


class Sidecar:
    """A `sequin-sf` process; its stderr is kept in a file for the failure message."""

    def __init__(self, dsn, key_file, listen=None, extra=(), env=None):
        """`key_file` None: the key comes from `env` (SEQUIN_SF_KEY)."""
        self.log = tempfile.NamedTemporaryFile(prefix="sequin-sf-", suffix=".log", delete=False)
        self.listen = listen
        extra = [*(["--key-file", key_file] if key_file else []),
                 *(["--listen", listen] if listen else []), *extra]
        self.proc = subprocess.Popen(
            [SIDECAR_BIN, "--database-url", dsn, *extra],
            stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, **(env or {})},
        )

    def get(self, path):
        """(status, body) of an HTTP GET of the sidecar's endpoint."""
        try:
            with urllib.request.urlopen(f"http://{self.listen}{path}", timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def output(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode


def sequin_sf_cli(*args, env=None):
    """Runs a one-off `sequin-sf` command (install, key create, credential create...);
    returns its CompletedProcess (stdout and stderr as text)."""
    return subprocess.run([SIDECAR_BIN, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def plain_cluster(owner="sync_owner", settings=None):
    """A Postgres that loads no sequin_sf library (nothing preloaded, no extension) and
    a role `owner` with LOGIN and CREATE on the database only: what a managed Postgres
    gives the role sequin-sf runs as."""
    cluster = Cluster(settings={"shared_preload_libraries": "''", **(settings or {})})
    with cluster.connect() as c:
        c.execute(f"CREATE ROLE {owner} LOGIN")
        c.execute(f"GRANT CREATE ON DATABASE {cluster.database} TO {owner}")
    return cluster


def create_sidecar_credential(dsn, key_file, emulator, name="emu"):
    """`sequin-sf credential create` for the emulator's connected app, the secrets in
    the environment; returns what it printed."""
    done = sequin_sf_cli(
        "credential", "create", name, "--kind", "refresh_token", "--login-url", emulator.base_url,
        "--client-id", CLIENT_ID, "--database-url", dsn, "--key-file", key_file,
        env={"SEQUIN_SF_CLIENT_SECRET": CLIENT_SECRET, "SEQUIN_SF_REFRESH_TOKEN": REFRESH_TOKEN})
    assert done.returncode == 0, done.stderr
    return done.stdout


def sidecar_key(cluster):
    """A copy of the cluster's credential key, as a sidecar is given it (the original
    is the postgres user's, in the data directory)."""
    key = os.path.join(tempfile.mkdtemp(prefix="sequin-sf-key-"), "key")
    shutil.copy(os.path.join(cluster.datadir, "sequin_sf.key"), key)
    return key


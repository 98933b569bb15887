"""TLS on every listener, tested with the real clients: ADBC over
`grpc+tls://` with the test CA, an HTTPS POST to the collector, a
coordinator reaching an `https://` worker with `--cluster-ca` (and mutual
TLS with `--tls-client-ca`), and the start errors of bad flags.

Certificates come from trustme, generated for this module (a CA, and
certificates for 127.0.0.1): no key is committed. Expected rows come from
DuckDB over the demo warehouse's files, or from the events posted here.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest
import trustme

import collector_client as cc
import seglake_harness as h

COUNT_BY_CHANNEL = "SELECT channel, count(*) AS n FROM events GROUP BY channel"


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path
    # A client certificate (mutual TLS), signed by `client_ca`.
    client_ca: Path
    client_cert: Path
    client_key: Path

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    # Client certificates come from another CA: a server certificate of
    # the cluster CA is not a client certificate the worker accepts.
    client_ca = trustme.CA()
    client = client_ca.issue_cert("seglake-coordinator")
    c = Certs(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client-ca.pem",
        d / "client.pem",
        d / "client.key",
    )
    ca.cert_pem.write_to_path(str(c.ca))
    server.private_key_pem.write_to_path(str(c.key))
    c.cert.write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
    client_ca.cert_pem.write_to_path(str(c.client_ca))
    client.private_key_pem.write_to_path(str(c.client_key))
    c.client_cert.write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))
    return c


def tls_flags(c: Certs) -> tuple[str, ...]:
    return ("--tls-cert", str(c.cert), "--tls-key", str(c.key))


def connect_tls(address: str, ca_pem: str | None):
    """ADBC over grpc+tls (verification on); `ca_pem` None: the system's roots."""
    opts = adbc_driver_flightsql.DatabaseOptions
    kwargs = {
        "username": h.DEFAULT_USER,
        "password": h.DEFAULT_PASSWORD,
        opts.TIMEOUT_QUERY.value: "30",
        opts.TIMEOUT_FETCH.value: "30",
    }
    if ca_pem is not None:
        kwargs[opts.TLS_ROOT_CERTS.value] = ca_pem
    return flightsql.connect(f"grpc+tls://{address}", db_kwargs=kwargs, autocommit=True)


def fails_to_query(connect) -> adbc_driver_manager.Error:
    """The error of connecting and running a query (the driver may connect
    lazily: the failure shows at either step)."""
    with pytest.raises(adbc_driver_manager.Error) as info:
        conn = connect()
        try:
            h.run_sql(conn, "SELECT 1")
        finally:
            conn.close()
    return info.value


# ---------------------------------------------------------------------------
# Flight SQL and the collector over TLS
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(launch, demo_warehouse, certs):
    dep = launch.start(demo_warehouse, args=(*tls_flags(certs), "--collect", "127.0.0.1:0", "--collect-flush-ms", "30"))
    yield dep
    dep.stop()


def test_adbc_over_tls_with_the_ca(tls_server, certs, duck):
    conn = connect_tls(tls_server.endpoint.address, certs.ca_pem)
    try:
        h.assert_rows_equal(h.rows(h.run_sql(conn, COUNT_BY_CHANNEL)), duck.rows(COUNT_BY_CHANNEL))
    finally:
        conn.close()


def test_plaintext_client_to_the_tls_port_fails(tls_server):
    fails_to_query(lambda: h.connect(f"grpc://{tls_server.endpoint.address}"))


def test_client_without_the_ca_fails(tls_server):
    # Verification on, the system's roots: the test CA is not among them.
    fails_to_query(lambda: connect_tls(tls_server.endpoint.address, None))


def test_https_post_to_the_collector(tls_server, certs):
    p = f"t{uuid.uuid4().hex[:10]}"
    events = [
        {
            "event_id": f"{p}-e0",
            "profile_id": f"{p}-p0",
            "event_time": "2026-10-30T22:00:00+00:00",
            "event_type": "page_view",
            "channel": "web",
            "source": "web",
        }
    ]
    addr = tls_server.endpoint.collector_address
    req = urllib.request.Request(
        f"https://{addr}/v1/events", data=json.dumps(events).encode(), method="POST"
    )
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", cc.basic())
    context = ssl.create_default_context(cafile=str(certs.ca))
    with urllib.request.urlopen(req, timeout=60, context=context) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"accepted": 1, "duplicates": 0, "forgotten": 0}
    conn = connect_tls(tls_server.endpoint.address, certs.ca_pem)
    try:
        got = h.rows(h.run_sql(conn, f"{cc.SELECT_ROWS} WHERE profile_id LIKE ?", [f"{p}-%"]))
        h.assert_rows_equal(got, [cc.expected_row(e) for e in events])
    finally:
        conn.close()


def test_plain_http_to_the_collector_fails(tls_server, certs):
    p = f"t{uuid.uuid4().hex[:10]}"
    body = json.dumps(
        [{"profile_id": f"{p}-p0", "event_time": "2026-10-30T22:00:00Z", "event_type": "x", "channel": "web", "source": "web"}]
    ).encode()
    host, port = tls_server.endpoint.collector_address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("POST", "/v1/events", body=body, headers={"Authorization": cc.basic(), "Content-Type": "application/json"})
        resp = conn.getresponse()
        # A TLS alert is not an HTTP answer.
        raise AssertionError(f"plain HTTP got an answer: {resp.status} {resp.read()[:200]!r}")
    conn.close()
    # Nothing was written.
    tconn = connect_tls(tls_server.endpoint.address, certs.ca_pem)
    try:
        n = h.run_sql(tconn, "SELECT count(*) FROM events WHERE profile_id LIKE ?", [f"{p}-%"]).column(0)[0].as_py()
        assert n == 0
    finally:
        tconn.close()


def test_https_collector_without_the_ca_fails(tls_server):
    addr = tls_server.endpoint.collector_address
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(f"https://{addr}/health", timeout=30, context=ssl.create_default_context())
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError), info.value


# ---------------------------------------------------------------------------
# Coordinator to worker
# ---------------------------------------------------------------------------


def start(seglake_bin, logs_dir, name: str, argv: list[str]) -> h.ServerProcess:
    return h.ServerProcess([str(seglake_bin), *argv], h.child_env(), logs_dir / f"tls-{name}-{uuid.uuid4().hex[:6]}.log", name)


def workers_table(conn) -> list[dict]:
    return h.run_sql(conn, "SELECT url, state, tasks, last_error FROM system.workers").to_pylist()


@pytest.fixture(scope="module")
def tls_workers(seglake_bin, logs_dir, demo_warehouse, certs):
    """Two TLS workers; a query's stages read from each other over TLS too
    (hence --cluster-ca on the workers)."""
    workers = []
    try:
        for i in range(2):
            argv = ["worker", "--warehouse", str(demo_warehouse), "--listen", "127.0.0.1:0", *tls_flags(certs), "--cluster-ca", str(certs.ca)]
            workers.append(start(seglake_bin, logs_dir, f"worker{i}", argv))
        yield workers
    finally:
        for w in workers:
            w.stop_gracefully()


def https_urls(workers) -> str:
    return ",".join(f"https://{w.address}" for w in workers)


def coordinator(seglake_bin, logs_dir, warehouse, workers: str, *extra: str) -> h.ServerProcess:
    return start(
        seglake_bin,
        logs_dir,
        "coordinator",
        ["serve", "--warehouse", str(warehouse), "--listen", "127.0.0.1:0", "--workers", workers, *h.COORDINATOR_ARGS, *extra],
    )


def test_coordinator_with_tls_workers(seglake_bin, logs_dir, demo_warehouse, certs, tls_workers, duck):
    coord = coordinator(seglake_bin, logs_dir, demo_warehouse, https_urls(tls_workers), "--cluster-ca", str(certs.ca))
    try:
        conn = h.connect(coord.uri)
        try:
            before = workers_table(conn)
            assert sorted(w["url"] for w in before) == sorted(f"https://{w.address}/" for w in tls_workers)
            assert all(w["state"] == "up" for w in before), before
            h.assert_rows_equal(h.rows(h.run_sql(conn, COUNT_BY_CHANNEL)), duck.rows(COUNT_BY_CHANNEL))
            after = workers_table(conn)
            assert all(w["state"] == "up" for w in after), after
            assert sum(w["tasks"] for w in after) > sum(w["tasks"] for w in before), after
        finally:
            conn.close()
    finally:
        coord.stop_gracefully()


def test_coordinator_without_the_ca_runs_alone(seglake_bin, logs_dir, demo_warehouse, tls_workers, duck):
    # The workers' certificate is checked against the system's roots.
    coord = coordinator(seglake_bin, logs_dir, demo_warehouse, https_urls(tls_workers))
    try:
        conn = h.connect(coord.uri)
        try:
            for w in workers_table(conn):
                assert w["state"] == "down" and "certificate" in (w["last_error"] or "").lower(), w
            h.assert_rows_equal(h.rows(h.run_sql(conn, COUNT_BY_CHANNEL)), duck.rows(COUNT_BY_CHANNEL))
            for w in workers_table(conn):
                assert w["state"] == "down" and w["tasks"] == 0, w
        finally:
            conn.close()
    finally:
        coord.stop_gracefully()


def test_mutual_tls_workers(seglake_bin, logs_dir, demo_warehouse, certs, duck):
    client_identity = ("--cluster-client-cert", str(certs.client_cert), "--cluster-client-key", str(certs.client_key))
    workers = []
    try:
        for i in range(2):
            argv = [
                "worker",
                "--warehouse",
                str(demo_warehouse),
                "--listen",
                "127.0.0.1:0",
                *tls_flags(certs),
                "--tls-client-ca",
                str(certs.client_ca),
                # Workers read from each other: they present the client certificate too.
                "--cluster-ca",
                str(certs.ca),
                *client_identity,
            ]
            workers.append(start(seglake_bin, logs_dir, f"mtls-worker{i}", argv))
        urls = https_urls(workers)
        # Without a client certificate: the workers refuse the coordinator.
        coord = coordinator(seglake_bin, logs_dir, demo_warehouse, urls, "--cluster-ca", str(certs.ca))
        try:
            conn = h.connect(coord.uri)
            try:
                for w in workers_table(conn):
                    # TLS 1.3: the refusal comes after the client's side of
                    # the handshake, as an alert or a closed connection.
                    assert w["state"] == "down" and w["last_error"], w
                h.assert_rows_equal(h.rows(h.run_sql(conn, COUNT_BY_CHANNEL)), duck.rows(COUNT_BY_CHANNEL))
            finally:
                conn.close()
        finally:
            coord.stop_gracefully()
        # With one signed by --tls-client-ca: used.
        coord = coordinator(seglake_bin, logs_dir, demo_warehouse, urls, "--cluster-ca", str(certs.ca), *client_identity)
        try:
            conn = h.connect(coord.uri)
            try:
                before = workers_table(conn)
                assert all(w["state"] == "up" for w in before), before
                h.assert_rows_equal(h.rows(h.run_sql(conn, COUNT_BY_CHANNEL)), duck.rows(COUNT_BY_CHANNEL))
                after = workers_table(conn)
                assert sum(w["tasks"] for w in after) > sum(w["tasks"] for w in before), after
            finally:
                conn.close()
        finally:
            coord.stop_gracefully()
    finally:
        for w in workers:
            w.stop_gracefully()


# ---------------------------------------------------------------------------
# Start errors
# ---------------------------------------------------------------------------


def start_error(seglake_bin, warehouse, *argv: str) -> str:
    """Runs a command that must refuse to start; its standard error."""
    res = subprocess.run(
        [str(seglake_bin), *argv],
        env=h.child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0, f"started: {res.stdout}\n{res.stderr[-2000:]}"
    assert not res.stdout.startswith("listening on"), res.stdout
    return res.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_cert_without_key_stops_the_start(seglake_bin, tmp_path, certs, command):
    err = start_error(seglake_bin, tmp_path, command, "--warehouse", str(tmp_path / "wh"), "--listen", "127.0.0.1:0", "--tls-cert", str(certs.cert))
    assert "--tls-cert needs --tls-key" in err, err
    # Refused before the warehouse was opened.
    assert not (tmp_path / "wh").exists()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_bad_key_is_named_not_printed(seglake_bin, tmp_path, certs, command):
    marker = "Zm9vYmFyc2VjcmV0bWFya2Vy"  # would be the key's content
    bad = tmp_path / "bad.key"
    bad.write_text(f"-----BEGIN PRIVATE KEY-----\n{marker}!!\n-----END PRIVATE KEY-----\n")
    err = start_error(
        seglake_bin, tmp_path, command, "--warehouse", str(tmp_path / "wh"), "--listen", "127.0.0.1:0", "--tls-cert", str(certs.cert), "--tls-key", str(bad)
    )
    assert str(bad) in err and "--tls-key" in err, err
    assert marker not in err, err


def test_key_of_another_certificate_is_refused(seglake_bin, tmp_path, certs):
    err = start_error(
        seglake_bin,
        tmp_path,
        "serve",
        "--warehouse",
        str(tmp_path / "wh"),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        str(certs.cert),
        "--tls-key",
        str(certs.client_key),
    )
    assert "does not fit" in err and str(certs.client_key) in err, err


def test_unreadable_cluster_ca_is_named(seglake_bin, tmp_path):
    missing = tmp_path / "missing-ca.pem"
    err = start_error(
        seglake_bin, tmp_path, "serve", "--warehouse", str(tmp_path / "wh"), "--listen", "127.0.0.1:0", "--workers", "https://127.0.0.1:1", "--cluster-ca", str(missing)
    )
    assert "--cluster-ca" in err and str(missing) in err, err


def test_cluster_ca_without_a_certificate_is_refused(seglake_bin, tmp_path, certs):
    # A key is not a CA certificate.
    err = start_error(
        seglake_bin, tmp_path, "worker", "--warehouse", str(tmp_path / "wh"), "--listen", "127.0.0.1:0", "--cluster-ca", str(certs.key)
    )
    assert "--cluster-ca" in err and str(certs.key) in err and "no PEM certificate" in err, err
    assert "PRIVATE KEY" not in err, err

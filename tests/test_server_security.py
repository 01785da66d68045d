"""Authentication, TLS, and the refusal to serve a public address without credentials."""

from __future__ import annotations

import base64
import subprocess
import sys

import adbc_driver_manager
import pyarrow.flight as flight
import pytest

from server.call_options import PARTITIONED_OPTION
from server.serve import ServeError, is_loopback, serve
from tests.server_fixtures import BACKENDS, REPO, copy_data, make_self_signed_cert, start_server, stop_server

pytestmark = pytest.mark.timeout(300)

USER, PASSWORD = "alice", "correct horse battery staple"
UNAUTHENTICATED = adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED


def query_one(connection) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM region")
        return cur.fetchone()[0]


# --- authentication ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def auth_server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"auth-{request.param}")
    proc = start_server(request.param, copy_data(tmp / "data"), tmp / "server.log",
                        args=["--user", USER, "--password", PASSWORD])
    yield proc
    stop_server(proc)


def test_right_credentials(auth_server):
    connection = auth_server.connect(username=USER, password=PASSWORD)
    assert query_one(connection) == 5
    assert query_one(connection) == 5  # the bearer token keeps working
    connection.close()


@pytest.mark.parametrize("credentials", [
    {"username": USER, "password": "wrong"},
    {"username": "mallory", "password": PASSWORD},
    {},
], ids=["wrong-password", "wrong-user", "missing"])
def test_wrong_or_missing_credentials(auth_server, credentials):
    with pytest.raises(adbc_driver_manager.Error) as refused:
        connection = auth_server.connect(**credentials)
        try:
            query_one(connection)
        finally:
            connection.close()
    assert refused.value.status_code == UNAUTHENTICATED, refused.value


def test_partitioned_results_from_the_ranks_with_credentials(auth_server):
    # The ADBC driver brings rank 0's bearer token to each rank's own endpoint.
    sql = "SELECT o_orderkey, o_comment FROM orders"
    connection = auth_server.connect(username=USER, password=PASSWORD, **{PARTITIONED_OPTION: "true"})
    try:
        with connection.cursor() as cur:
            partitions, _ = cur.adbc_execute_partitions(sql)
            rows = 0
            for partition in partitions:
                cur.adbc_read_partition(partition)
                rows += cur.fetch_arrow_table().num_rows
            cur.execute(sql)
            assert cur.fetch_arrow_table().num_rows == rows == 15000
    finally:
        connection.close()


def test_bearer_token_over_raw_flight(auth_server):
    client = flight.connect(auth_server.uri)
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_actions())
    header = client.authenticate_basic_token(USER, PASSWORD)
    assert header[0].lower() == b"authorization" and header[1].startswith(b"Bearer ")
    options = flight.FlightCallOptions(headers=[header])
    assert {a.type for a in client.list_actions(options)} >= {"CreatePreparedStatement", "CancelFlightInfo"}
    forged = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer not-a-token")])
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_actions(forged))
    basic_wrong = base64.b64encode(f"{USER}:nope".encode())
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_actions(flight.FlightCallOptions(headers=[(b"authorization", b"Basic " + basic_wrong)])))
    client.close()


def test_shell_with_credentials(auth_server):
    def shell(*args):
        return subprocess.run(
            [sys.executable, "-m", "server", "sql", auth_server.uri, "-c", "SELECT count(*) AS n FROM region",
             "--format", "csv", *args],
            cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )

    good = shell("--user", USER, "--password", PASSWORD)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == ["n", "5"]
    bad = shell("--user", USER, "--password", "wrong")
    assert bad.returncode != 0
    assert "nauthenticated" in bad.stderr or "UNAUTHENTICATED" in bad.stderr, bad.stderr


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def tls_server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"tls-{request.param}")
    cert, key = make_self_signed_cert(tmp)
    proc = start_server(request.param, copy_data(tmp / "data"), tmp / "server.log",
                        args=["--tls-cert", str(cert), "--tls-key", str(key)])
    proc.cert = cert
    yield proc
    stop_server(proc)


def test_tls_with_trusted_certificate(tls_server):
    assert tls_server.uri.startswith("grpc+tls://")
    connection = tls_server.connect(**{"adbc.flight.sql.client_option.tls_root_certs": tls_server.cert.read_text()})
    assert query_one(connection) == 5
    connection.close()


def test_partitioned_results_from_the_ranks_over_tls(tls_server):
    connection = tls_server.connect(**{"adbc.flight.sql.client_option.tls_root_certs": tls_server.cert.read_text(),
                                       PARTITIONED_OPTION: "true"})
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT o_orderkey, o_comment FROM orders")
            assert cur.fetch_arrow_table().num_rows == 15000
    finally:
        connection.close()


def test_tls_refuses_untrusted_and_plaintext_clients(tls_server):
    with pytest.raises(adbc_driver_manager.Error):
        connection = tls_server.connect()  # the system roots do not trust a self-signed certificate
        try:
            query_one(connection)
        finally:
            connection.close()
    import adbc_driver_flightsql.dbapi as flight_sql

    with pytest.raises(adbc_driver_manager.Error):
        connection = flight_sql.connect(tls_server.uri.replace("grpc+tls://", "grpc://"), autocommit=True)
        try:
            query_one(connection)
        finally:
            connection.close()


def test_shell_over_tls(tls_server):
    result = subprocess.run(
        [sys.executable, "-m", "server", "sql", tls_server.uri, "--tls-root-cert", str(tls_server.cert),
         "-c", "SELECT r_name FROM region ORDER BY r_regionkey LIMIT 2", "--format", "csv"],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["r_name", "AFRICA", "AMERICA"]


# --- binding ---------------------------------------------------------------------------------------


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")


def test_serve_refuses_public_address_without_credentials():
    with pytest.raises(ServeError, match="--insecure"):
        serve(None, host="0.0.0.0", port=0)
    with pytest.raises(ServeError, match="both"):
        serve(None, host="127.0.0.1", port=0, user="u")
    with pytest.raises(ServeError, match="both"):
        serve(None, host="127.0.0.1", port=0, tls_cert="cert.pem")


def test_cli_refuses_public_address_before_starting_ranks(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--data", str(tmp_path), "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "without authentication" in result.stderr


def test_insecure_public_address_serves(tmp_path):
    proc = start_server("double", copy_data(tmp_path / "data"), tmp_path / "server.log",
                        args=["--host", "0.0.0.0", "--insecure"])
    try:
        port = proc.uri.rsplit(":", 1)[1]
        proc.uri = f"grpc://127.0.0.1:{port}"
        connection = proc.connect()
        assert query_one(connection) == 5
        connection.close()
    finally:
        stop_server(proc)

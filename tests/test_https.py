"""HTTPS served by gunicorn itself (``--certfile/--keyfile``), with a throwaway CA (tests/tls.py).

- ``microweb run`` passes ``--certfile/--keyfile`` (and ``--http-protocols``)
  through to gunicorn: the app answers over TLS, HTTP/2 by ALPN.
- Over TLS, ``wsgi.url_scheme`` is ``https``: `SecurityHeaders` sends HSTS
  (RFC 6797 §7.1; never over plain http, §7.2) and `HTTPSRedirect` lets the
  request through instead of answering 308.
- WebSockets over TLS (``wss://``, RFC 6455 §11.1.2) through the same socket
  handover, the certificate verified against the test CA.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from microweb_run import microweb_run
from servers import TIMEOUT, serving
from tls import TLS, make_tls
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

GTHREAD = ("--worker-class", "gthread", "--threads", "8")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secure_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls: TLS
) -> Iterator[str]:
    """examples/secure_api.py with FORCE_HTTPS=1, over TLS."""
    tmp = tmp_path_factory.mktemp("secure_api")
    with serving(request.node, tmp) as start:
        env = {"NOTES_DB": str(tmp / "notes.db"), "FORCE_HTTPS": "1"}
        url = start("examples.secure_api:app", env=env, workers=1, args=(*GTHREAD, *tls.args))
        yield url.replace("http://", "https://")


def test_rfc6797_7_1_hsts_sent_over_https(secure_api: str, tls: TLS) -> None:
    response = httpx.get(f"{secure_api}/notes", verify=tls.context, timeout=TIMEOUT)
    assert response.status_code == 200  # HTTPSRedirect saw https: no 308
    assert response.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


def test_rfc8446_plain_http_to_the_tls_port_is_refused(secure_api: str) -> None:
    """The port speaks TLS only: an http:// request gets no HTTP answer at all."""
    with pytest.raises(httpx.HTTPError):
        httpx.get(secure_api.replace("https://", "http://") + "/notes", timeout=TIMEOUT)


def test_certificate_is_verified_against_the_test_ca(secure_api: str) -> None:
    """No verify=False anywhere: a client that does not trust the CA refuses the server."""
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{secure_api}/notes", timeout=TIMEOUT)


def test_rfc6455_11_1_2_wss_echo(request: pytest.FixtureRequest, tmp_path: Path, tls: TLS) -> None:
    with serving(request.node, tmp_path) as start:
        # NOTE: `start` returns once the worker has loaded the app (servers.py).
        # `open_timeout` bounds the whole opening, the TLS handshake included: a
        # connection waiting in the backlog for a worker still booting on a
        # loaded machine would end in "_ssl.c: The handshake operation timed out".
        url = start("tests.websocket_app:app", workers=1, args=(*GTHREAD, *tls.args))
        uri = url.replace("http://", "wss://") + "/echo"
        with connect(uri, ssl=tls.context, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
            for message in ("over tls", b"\x00" * 70_000):
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message


def test_microweb_run_passes_certfile_keyfile_and_http_protocols(tmp_path: Path, tls: TLS) -> None:
    args = ("--workers", "1", *GTHREAD, "--http-protocols", "h2,h1", *tls.args)
    served = microweb_run("examples.hello:app", tmp_path / "log", args=args)
    client = httpx.Client(http2=True, verify=tls.context, timeout=TIMEOUT)
    with served as (url, _), client:
        response = client.get(url.replace("http://", "https://") + "/")
    assert (response.status_code, response.text) == (200, "Hello, World!")
    assert response.http_version == "HTTP/2"

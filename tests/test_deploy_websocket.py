"""WebSockets through the deployment recipe's nginx (examples/deploy/nginx.conf.template).

The recipe (tests/test_deploy.py and test_deploy_failures.py have the rest) with its instances on
gunicorn's gthread worker: nginx's ``location /ws/`` forwards the upgrade
(``Upgrade``/``Connection``, HTTP/1.1 upstream) and leaves the socket open
for ``proxy_read_timeout``. The handshake crosses the whole stack, ProxyFix
included: the Origin check compares with the Host nginx forwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deployment import INSTANCE_ENV, running, tools
from servers import TIMEOUT, fetch
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from examples.deploy.run import Deployment

pytestmark = pytest.mark.e2e

GTHREAD = ("--graceful-timeout", "2", "--worker-class", "gthread", "--threads", "8")

__all__ = ["tools"]  # the fixture that installs nginx and redis-server


@pytest.fixture(scope="module")
def deployment(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running(tmp_path_factory.mktemp("deploy"), env=INSTANCE_ENV,
                 gunicorn_args=GTHREAD) as started:  # fmt: skip
        yield started


def test_rfc6455_websocket_through_nginx_reaches_both_instances(deployment: Deployment) -> None:
    uri = deployment.url.replace("http://", "ws://") + "/ws/echo"
    origin = deployment.url  # the page's own origin, as a browser would send it
    answered = set()
    for n in range(4):  # round robin: two connections land on each instance
        with connect(uri, origin=origin, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
            ws.send(f"hello {n}")
            instance, _, text = str(ws.recv(timeout=TIMEOUT)).partition(": ")
            assert text == f"hello {n}"
            answered.add(instance)
    assert answered == {"a", "b"}


def test_rfc6455_10_2_cross_origin_refused_through_nginx(deployment: Deployment) -> None:
    uri = deployment.url.replace("http://", "ws://") + "/ws/echo"
    with pytest.raises(InvalidStatus) as refused:
        connect(uri, origin="https://evil.example", open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403


def test_rfc9110_15_5_22_plain_get_through_nginx_is_426(deployment: Deployment) -> None:
    reply = fetch(deployment.url, "GET", "/ws/echo")
    assert (reply.status, reply.headers["Upgrade"]) == (426, "websocket")

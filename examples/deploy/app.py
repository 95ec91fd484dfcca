"""The accounts example configured for deployment: one of several instances behind nginx.

examples/accounts.py keeps its state in a SQLite file, which every gunicorn
worker *on one machine* shares. Behind a load balancer, consecutive requests
of one client land on different instances (other machines, or, in this
recipe, other gunicorn masters), so everything that must be the same for all
of them lives in **one Redis**:

====================  =================================================
state                 why it must be shared
====================  =================================================
sessions              logged in on instance A, still logged in on B
JWT revocations       a token revoked through A is refused by B
notes (the data)      an id handed out by A is never handed out by B
rate-limit counters   N requests per client in total, not N per instance
idempotency records   a retried POST that lands on B replays A's answer
====================  =================================================

Served by examples/deploy/run.py (see docs/deploying.md); by hand:

    REDIS_URL=redis://127.0.0.1:6379/0 INSTANCE=a JWT_KEY=<32+ random bytes> \\
    INSECURE_COOKIES=1 microweb run examples.deploy.app:app --bind 127.0.0.1:8001

Configuration (environment), besides the accounts example's own
(``INSECURE_COOKIES``, ``ALLOWED_HOSTS``, ``TRUSTED_PROXIES``, ``FORCE_HTTPS``):

- ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and ``REDIS_TIMEOUT``
  (seconds, default 0.5): how long a request waits for a Redis that does not
  answer before it gets its 503;
- ``JWT_KEY``: **required** here. Every instance must verify what any other
  instance signed, so they all get the same key; a missing key is an error
  at startup, not the accounts example's development key.
- ``RATE_LIMIT`` (default ``300/minute``): per client address, counted
  across all instances; ``/healthz`` is not counted;
- ``INSTANCE``: this instance's name, sent back in ``X-Instance`` (so that
  you, and the tests, can see which instance answered). Default: host:pid.

The stack, besides the accounts example's: `RateLimit` (fail closed: when
Redis is down, 503 rather than no limit) and `Idempotency` on POST/PATCH
(an ``Idempotency-Key`` makes a client's retry safe; fail closed too).
``GET /healthz`` answers without touching Redis: it says "this process
serves requests", which is what a load balancer's check should ask.

``app`` is what gunicorn serves: the `App` (``site``, for ``microweb routes
examples.deploy.app:site``) inside one outer layer that adds ``X-Instance``
to every response, the 429s and 503s of the stack included.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from examples.accounts import build_app, setting
from microweb import App, Request
from microweb.middleware import Middleware
from microweb.middleware.idempotency import Idempotency
from microweb.middleware.rate_limit import RateLimit
from microweb.stores import RedisStore
from microweb.types import Environ, Headers
from microweb.websocket import WebSocket


class InstanceHeader(Middleware):
    """``X-Instance: <name>`` on every response: which instance answered."""

    def __init__(self, app: Any, name: str) -> None:
        super().__init__(app)
        self.header = ("X-Instance", name)

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        headers.append(self.header)


def required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"examples.deploy.app: set {name} (see docs/deploying.md)")
    return value


def create_site(
    store: RedisStore,
    jwt_key: str,
    *,
    instance: str,
    rate_limit: str = "300/minute",
    secure_cookies: bool = True,
    allowed_hosts: list[str] | None = None,
    trusted_proxies: list[str] | None = None,
    force_https: bool = False,
) -> App:
    """The accounts site on `store`, with a shared rate limit, idempotency and /healthz."""
    # The proxy in front (nginx, on this machine in the recipe) overwrites
    # X-Forwarded-For with the address of its peer and sets X-Forwarded-Proto
    # and Host: one hop each, believed only from `trusted_proxies` — the
    # accounts stack's ProxyFix(x_for=1, x_proto=1, trusted=...). See
    # nginx.conf.template for the other side of that agreement.
    site = build_app(
        store,
        jwt_key,
        secure_cookies=secure_cookies,
        allowed_hosts=allowed_hosts,
        trusted_proxies=trusted_proxies,
        force_https=force_https,
    )

    @site.get("/healthz")
    def healthz(req: Request) -> dict[str, str]:
        # NOTE: no Redis here on purpose: a Redis outage is every instance's
        # problem at once; taking them all out of rotation would turn a 503
        # for the endpoints that need Redis into an outage of all of them.
        return {"status": "ok", "instance": instance}

    # A WebSocket through the load balancer (nginx.conf.template's /ws/
    # location): it echoes, naming the instance. Needs the gthread worker.
    @site.websocket("/ws/echo")
    def echo(req: Request, ws: WebSocket) -> None:
        for message in ws:
            ws.send(f"{instance}: {message}")

    # Keyed by REMOTE_ADDR, i.e. the client address ProxyFix established;
    # counted in Redis, so the limit holds across instances.
    site.use(RateLimit, limit=rate_limit, store=store, exempt=("/healthz",))
    # Scoped per credential (the default: a digest of Authorization), so a
    # key is only ever replayed to the client that sent it.
    site.use(Idempotency, store=store)
    return site


def instance_name() -> str:
    return os.environ.get("INSTANCE") or f"{socket.gethostname()}:{os.getpid()}"


def site_from_env(instance: str) -> App:
    store = RedisStore(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        prefix="accounts:",
        timeout=float(os.environ.get("REDIS_TIMEOUT", "0.5")),
    )
    return create_site(
        store,
        required("JWT_KEY"),
        instance=instance,
        rate_limit=os.environ.get("RATE_LIMIT", "300/minute"),
        secure_cookies=os.environ.get("INSECURE_COOKIES") != "1",
        allowed_hosts=setting("ALLOWED_HOSTS", "127.0.0.1,localhost"),
        trusted_proxies=setting("TRUSTED_PROXIES", "127.0.0.1"),
        force_https=os.environ.get("FORCE_HTTPS") == "1",
    )


INSTANCE = instance_name()
site = site_from_env(INSTANCE)
app = InstanceHeader(site, INSTANCE)

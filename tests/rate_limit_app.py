"""The app test_middleware_rate_limit.py serves with a real gunicorn (several workers).

A hand-written WSGI app behind ``ProxyFix`` and ``RateLimit("100/day")``,
configured from the environment:

- ``RATE_LIMIT_STORE``: ``sqlite:<path>`` or a ``redis://`` URL: the store
  every worker shares;
- ``RATE_LIMIT_T0``: the test's start time. The limiter's clock is a real,
  ticking clock shifted so that the test starts one second into a day
  window: a run that happens to straddle midnight UTC still counts all of
  its requests in one window, so the totals the test asserts are exact.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from microweb.middleware.proxy_fix import ProxyFix
from microweb.middleware.rate_limit import RateLimit
from microweb.types import Environ, StartResponse
from tests.store_specs import store_from_spec

LIMIT = "100/day"
_SHIFT = float(os.environ.get("RATE_LIMIT_T0", time.time())) - 1.0


def clock() -> float:
    return time.time() - _SHIFT  # 1.0 at the test's start, then ticking


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


# ProxyFix as deployed behind a proxy at 10.255.255.254: the test client
# (127.0.0.1) is not that proxy, so its X-Forwarded-For is not believed and
# rotating it cannot buy a fresh quota.
app = ProxyFix(
    RateLimit(hello, LIMIT, store=store_from_spec(os.environ["RATE_LIMIT_STORE"]), clock=clock),
    x_for=1,
    trusted=["10.255.255.254"],  # not the test client: its X-Forwarded-For is ignored
)

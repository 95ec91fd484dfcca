"""microweb: a small, fast WSGI framework on WebOb, served by gunicorn.

The public API is these names; everything else is reached through its
module (``microweb.testing.Client``, ``microweb.routing.RouteConflict``...).
"""

import warnings

# NOTE: WebOb 1.8 imports the stdlib cgi module, deprecated in Python 3.11 (on
# 3.13, where cgi is gone, WebOb uses legacy-cgi). microweb never uses cgi, so
# the warning would only be noise in every user's test run: silenced here, once.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import webob  # noqa: F401

from typing import TYPE_CHECKING, Any

from .app import App, Router
from .converters import Converter
from .errors import HTTPError
from .request import Request
from .response import Response, redirect

if TYPE_CHECKING:
    from .negotiation import negotiate
    from .streaming import EventStream

__all__ = [
    "App",
    "Converter",
    "EventStream",
    "HTTPError",
    "Request",
    "Response",
    "Router",
    "negotiate",
    "redirect",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # PEP 562. PERF: what not every app uses loads on first use, so that a
    # worker holds only what its app needs (bench/rss.py; tests/test_init.py
    # checks which modules `import microweb` loads).
    if name == "EventStream":
        from .streaming import EventStream

        return EventStream
    if name == "negotiate":
        from .negotiation import negotiate

        return negotiate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""microweb: a small, fast WSGI framework on WebOb, served by gunicorn.

The public API is these names; everything else is reached through its
module (``microweb.testing.Client``, ``microweb.routing.RouteConflict``...).
"""

from .app import App, Router
from .converters import Converter
from .errors import HTTPError
from .negotiation import negotiate
from .request import Request
from .response import Response, redirect
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

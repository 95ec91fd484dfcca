"""microweb: a small, fast WSGI framework on WebOb, served by gunicorn.

The public API is these names; everything else is reached through its
module (``microweb.testing.Client``, ``microweb.routing.RouteConflict``...).
"""

from .app import App, Router
from .converters import Converter
from .errors import HTTPError
from .request import Request
from .response import Response, redirect

__all__ = ["App", "Converter", "HTTPError", "Request", "Response", "Router", "redirect"]
__version__ = "0.1.0"

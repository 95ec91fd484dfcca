"""The application: route registration, and one request's whole life.

`App` is a PEP 3333 callable. Calling it runs the middleware stack (see
`microweb.middleware`), whose innermost layer is `App.dispatch`: the
request lifecycle, in six numbered steps, top to bottom. Everything a
request touches on its way is named there:

1. `Request` (``request.py``) wraps the environ; nothing is parsed yet.
2. `RouteTable.match` (``routing.py``) finds the handler, or a miss
   endpoint that answers 404, 405, 501, 308 or OPTIONS.
3. The handler runs.
4. `to_response` (``response.py``) turns its return value into a response.
5. `ErrorHandlers.respond` (``errors.py``) turns an error into a response.
6. The response is sent; HEAD loses its body here.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .converters import BUILTIN_CONVERTERS, Converter, check_converter
from .errors import ErrorHandlers
from .handler_checks import check_handler, handler_location
from .request import DEFAULT_MAX_BODY_SIZE, Request, RequestConfig
from .response import to_response, warn_none
from .route_templates import Handler, Route, parse_template
from .routing import RouteTable
from .types import Environ, StartResponse, WSGIApp
from .wsgi import DRAIN_LIMIT, Mount, drain_after

if TYPE_CHECKING:
    from .uploads import FormLimits

F = TypeVar("F", bound=Callable[..., Any])


class RouteDecorators:
    """``route``/``get``/``post``/``put``/``patch``/``delete``, shared by `App` and `Router`."""

    def add_route(
        self, path: str, handler: Handler, methods: Sequence[str], name: str | None = None
    ) -> None:
        raise NotImplementedError

    def route(
        self, path: str, methods: Sequence[str] = ("GET",), name: str | None = None
    ) -> Callable[[F], F]:
        if isinstance(methods, str):
            raise TypeError(f"methods must be a list, like [{methods!r}], not a string")

        def register(handler: F) -> F:
            self.add_route(path, handler, methods, name)
            return handler

        return register

    def get(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ["GET"], name)

    def post(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ["POST"], name)

    def put(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ["PUT"], name)

    def patch(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ["PATCH"], name)

    def delete(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.route(path, ["DELETE"], name)

    def websocket(
        self,
        path: str,
        origins: Iterable[str] | None = None,
        subprotocols: Sequence[str] = (),
        max_message_size: int = 1_048_576,
        ping_interval: float | None = 20,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """``@app.websocket("/chat")`` on ``handler(req, ws, **params)``: RFC 6455.

        A GET route whose handshake runs through the middleware stack like any
        request; see `microweb.websocket` and docs/websockets.md. Needs
        gunicorn's gthread worker.
        """
        # PERF: imported here, so that apps without WebSockets never load wsproto.
        from .websocket import WebSocketRoute

        def register(handler: F) -> F:
            route = WebSocketRoute(handler, origins, subprotocols, max_message_size, ping_interval)
            self.add_route(path, route, ["GET"], name)
            return handler

        return register


class Router(RouteDecorators):
    """A group of routes under a common prefix, added to an app with `App.include`.

    A router only records its routes; the app compiles them, with its own
    converters plus the router's. A route named ``"user"`` in
    ``Router(prefix="/api", name="api")`` is ``url_for("api.user")``.
    """

    def __init__(self, prefix: str = "", name: str | None = None) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"a prefix starts with '/' and does not end with one: {prefix!r}")
        self.prefix = prefix
        self.name = name
        self.converters: dict[str, type[Converter]] = {}
        self.routes: list[tuple[str, Handler, tuple[str, ...], str | None]] = []

    def add_route(
        self, path: str, handler: Handler, methods: Sequence[str], name: str | None = None
    ) -> None:
        self.routes.append((path, handler, tuple(methods), name))

    def add_converter(self, kind: str, converter: type[Converter]) -> None:
        check_converter(kind, converter)
        self.converters[kind] = converter

    def include(self, router: Router) -> None:
        """Nest `router` inside this one (prefixes and names compose)."""
        self.converters = {**router.converters, **self.converters}
        self.routes.extend(router.included_routes())

    def included_routes(self) -> list[tuple[str, Handler, tuple[str, ...], str | None]]:
        """The routes with this router's prefix and name applied (``"api.user"``)."""
        return [
            (
                self.prefix + path,
                handler,
                methods,
                f"{self.name}.{name or getattr(handler, '__name__', path)}" if self.name else name,
            )
            for path, handler, methods, name in self.routes
        ]


class App(RouteDecorators):
    """A microweb application: ``app = App()``, then ``@app.get("/")``.

    ``debug=True`` shows an unhandled exception's traceback in its 500 (never in
    production). ``max_body_size`` caps what a handler reads of a request body
    (413 above it, chunked bodies included); ``form_limits`` (a
    `microweb.uploads.FormLimits`) bounds multipart uploads. ``max_drain_size``
    bounds how much of a body left unread is read and discarded once the answer
    is sent, so that an early answer (413, 401, 429) reaches a client still
    sending its body instead of a reset (`microweb.wsgi.DrainBody`; 0 turns it off).
    """

    def __init__(
        self,
        debug: bool = False,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        form_limits: FormLimits | None = None,
        max_drain_size: int = DRAIN_LIMIT,
    ) -> None:
        if max_body_size < 0 or max_drain_size < 0:
            raise ValueError("max_body_size and max_drain_size must be >= 0")
        #: How much of a body left unread is read and discarded after the answer (wsgi.DrainBody).
        self.max_drain_size = max_drain_size
        self.router = RouteTable()
        #: What every `Request` gets: the body cap, the multipart limits (parts,
        #: headers, fields) and the route table's url builder.
        self.request_config = RequestConfig(max_body_size, form_limits, self.router.url_for)
        self.converters: dict[str, type[Converter]] = dict(BUILTIN_CONVERTERS)
        self.errors = ErrorHandlers()
        #: The middleware (`use`), outermost first, and each one's `slot` in the stack.
        self.middleware: list[tuple[Callable[..., WSGIApp], dict[str, Any]]] = []
        self.slots: list[int] = []
        self._stack: WSGIApp = self.dispatch
        self.debug = debug

    @property
    def max_body_size(self) -> int:
        return self.request_config.max_body_size

    @property
    def debug(self) -> bool:
        return self.errors.debug_page is not None

    @debug.setter
    def debug(self, value: bool) -> None:
        self.errors.debug_page = None
        if value:  # NOTE: never loaded in production; handed over, as it imports errors.py
            from .debug_page import render

            self.errors.debug_page = render

    # -- The WSGI entry point and the request lifecycle -------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # PERF: most requests have neither field, so there is nothing to drain and no
        # wrapper (bench/ response: 2.70x -> 2.53x). The rule is http.declares_body
        # (RFC 9112 §6.3), which drain_after asks; calling it here instead measured
        # slower (bench/ hello 1.92x -> 2.01x, response 2.46x -> 2.55x).
        if "CONTENT_LENGTH" not in environ and "HTTP_TRANSFER_ENCODING" not in environ:
            return self._stack(environ, start_response)
        # The whole stack, then (once the answer is sent) the unread body is drained,
        # so that an early answer (413, 401, 429...) reaches the client: wsgi.DrainBody.
        stream = environ.get("wsgi.input")
        body = self._stack(environ, start_response)
        return drain_after(body, environ, stream, self.max_drain_size)

    def dispatch(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """One request, start to finish: the innermost layer of the stack."""
        # 1. Build the request: a thin view of the environ, nothing parsed yet.
        req = Request(environ, self.request_config)
        try:
            # 2. Match the route. A miss comes back as a built-in endpoint.
            endpoint, params = self.router.match(environ)
            # 3. Call the handler.
            # PERF: a route without parameters is called without unpacking an empty dict
            # (bench/ response: 2.50x -> 2.46x).
            result = endpoint(req, **params) if params else endpoint(req)
            if result is None and self.debug:
                warn_none(req, endpoint)
            # 4. Convert what it returned; an HTTPError it returned passes through.
            #    A stream's first chunk is read here, so a bad one is still a 500.
            response = to_response(result, endpoint, environ)
        except Exception as exc:
            response = exc
        # 5. Errors, raised or returned, go through the error handlers.
        if isinstance(response, BaseException):
            response = self.errors.respond(req, response)
        # 6. Respond. HEAD drops the body in the response object, headers kept.
        return response(environ, start_response)

    def error_response(self, environ: Environ, exc: BaseException) -> WSGIApp:
        """The answer to an exception a middleware raised (see `microweb.middleware`)."""
        return self.errors.respond(Request(environ, self.request_config), exc)

    # -- Building the app --------------------------------------------------

    def add_route(
        self, path: str, handler: Handler, methods: Sequence[str], name: str | None = None
    ) -> None:
        self._add_route(path, handler, methods, name, self.converters)

    def _add_route(
        self,
        path: str,
        handler: Handler,
        methods: Sequence[str],
        name: str | None,
        converters: dict[str, type[Converter]],
    ) -> None:
        upper = frozenset(m.upper() for m in methods)
        if not upper:
            raise ValueError(f"route {path!r} needs at least one method")
        where = handler_location(handler)
        segments = tuple(parse_template(path, converters, where))
        route_name = name or str(getattr(handler, "__name__", path))
        route = Route(path, handler, upper, route_name, segments, where)
        check_handler(handler, path, route.param_names, where)
        self.router.add(route)

    def add_converter(self, kind: str, converter: type[Converter]) -> None:
        """Register ``{name:kind}``: `converter` has `regex`, `to_python`, `to_url`."""
        check_converter(kind, converter)
        self.converters[kind] = converter

    def include(self, router: Router) -> None:
        """Add every route of `router`, under its prefix and name."""
        converters = {**self.converters, **router.converters}
        for path, handler, methods, name in router.included_routes():
            self._add_route(path, handler, methods, name, converters)

    def mount(self, prefix: str, app: WSGIApp) -> None:
        """Send every request under `prefix` to another WSGI app (any PEP 3333 app)."""
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"a mount prefix starts with '/', without one at the end: {prefix!r}")
        self.router.mount(Mount(prefix, app))

    def static(
        self, url_prefix: str, directory: str, max_age: int = 0, immutable: bool = False
    ) -> None:
        """Serve the files under `directory` at `url_prefix` (ranges, validators, no traversal).

        See `microweb.static.StaticFiles`; ``max_age`` and ``immutable`` set
        ``Cache-Control`` (``immutable`` for fingerprinted file names).
        """
        from .static import StaticFiles  # NOTE: loaded by apps that serve files (worker RSS)

        self.mount(url_prefix, StaticFiles(directory, max_age=max_age, immutable=immutable))

    def errorhandler(self, key: int | type[BaseException]) -> Callable[[F], F]:
        """``@app.errorhandler(404)`` or ``@app.errorhandler(KeyError)``: ``f(req, error)``."""
        self.errors.check_key(key)

        def register(handler: F) -> F:
            self.errors.register(key, handler)
            return handler

        return register

    def use(
        self,
        middleware: Callable[..., WSGIApp],
        *,
        position: str | None = None,
        before: type | None = None,
        after: type | None = None,
        **options: Any,
    ) -> None:
        """Add a WSGI middleware, ``middleware(wsgi_app, **options)``, to the stack.

        microweb's own middleware take their place in the declared order
        (`microweb.middleware.ORDER`, with the reasons). Any other goes
        innermost, or where you say: ``position="outermost"``, or
        ``before=``/``after=`` a built-in (in request order); several at one
        place keep the order added. Giving more than one of the three, or
        placing a built-in, is a `ValueError`. The stack is built now, so a
        bad option or placement fails here, at startup.
        """
        # PERF: the middleware package (sessions, stores, brotli...) loads with
        # the first app.use, not with `import microweb`: bench/rss.py.
        from .middleware import build_stack, slot

        key = slot(middleware, position, before, after)
        index = bisect_right(self.slots, key)
        specs = [*self.middleware[:index], (middleware, options), *self.middleware[index:]]
        self._stack = build_stack(self.dispatch, specs, self.error_response)
        self.middleware = specs
        self.slots.insert(index, key)

    def url_for(self, name: str, /, **params: Any) -> str:
        """The path of the route called `name` (``app.url_for("note", id=3)``)."""
        return self.router.url_for(name, params)

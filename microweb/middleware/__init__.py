"""The middleware stack: which middleware exist, the order they run in, and the loop
that runs them.

``app.use(Name, **options)`` adds a middleware. microweb's own take their
place in `ORDER`, wherever the call is written: a request meets them top to
bottom (a response, bottom to top); moving one is refused (`slot`), as each
place has a security reason. Yours go innermost, or where you say:
``position="outermost"``, or ``before=``/``after=`` a built-in (request
order). ``microweb routes module:app`` prints what runs (`describe_stack`).

The order, and why:

1. **ProxyFix** — first, because everything after it reads the client
   address, scheme or host, and must read the ones it established.
2. **RequestID** — next, so every response below it (even a 400 from
   TrustedHost) carries the id, and every log line is tagged with it.
3. **SecurityHeaders** — outside everything that can answer on its own
   (TrustedHost's 400, HTTPSRedirect's 308, CORS preflights, error
   pages), so those carry the headers too.
4. **TrustedHost** — before anything builds a URL from ``Host``
   (HTTPSRedirect's ``Location``, ``req.url``, ``url_for(_external=True)``).
5. **HTTPSRedirect** — before CORS and the app: a plain-http request is
   sent to https before anything else is done for it.
6. **CORS** — answers preflights before the app (and its auth) runs: a
   preflight carries no credentials and must not be refused for that.
7. **RateLimit** — after ProxyFix (it counts per client address, the one
   ProxyFix established) and after CORS (a preflight is not counted, and
   a 429 still carries the CORS grant, so a page can read why it was
   refused); before everything that costs work: body reading, sessions,
   idempotency records, the app.
8. **BodyLimit** — after RateLimit (an oversized upload still counts
   against its sender), before anything that reads the body.
9. **CrossOriginProtection** — after CORS (preflights are answered first,
   and its 403 still carries the CORS grant), after ProxyFix and
   TrustedHost (it compares Origin with the scheme and Host they
   established), and before sessions and the app, so a refused cross-site
   request never loads a session or changes anything.
10. **CookieSessions / ServerSessions** (`microweb.sessions`) — after
   CrossOriginProtection, so a preflight or a refused cross-site POST never
   loads a session (no HMAC, no store read); outside GZip/ETag, so the
   session's ``Set-Cookie`` and ``Vary: Cookie`` are on the response that
   ETag tags and GZip compresses.
11. **GZip** — outside ETag: ETag hashes the identity bytes, and GZip gives
   the gzip representation its own tag (``"x-gzip"``) and maps a client's
   ``If-None-Match: "x-gzip"`` back, so a revalidating client gets its 304
   (RFC 9110 §8.8.3: two representations never share a strong tag). A
   304 decided inside costs no compression.
12. **ETag** — next to the app: it hashes exactly the bytes the app
   produced and answers 304/412/428 before any outer layer handles a body.
13. **Idempotency** — innermost: it records exactly what the app produced
   (identity bytes, no ``Content-Encoding``), so a replay is compressed,
   or not, for the ``Accept-Encoding`` of the retry, and tagged again like
   any response; and it runs only for requests that every other layer let
   through (a refused request must not take an idempotency key).

BodyLimit, GZip, ETag and Idempotency handle a body, so they are plain WSGI
layers, not hooks.

How the stack runs (`build_stack`): each run of consecutive `Middleware`
is one `HookChain`, which calls the layers' own `before` methods in a loop,
then the app, and their own `after` methods, innermost first, from one
``start_response`` wrapper (`run_afters`): what nested calls of
``Middleware.__call__`` do (an early answer from layer *n* is seen by the
`after` of layers 1..n-1 only), without a frame and a closure per layer.
Other middleware are plain WSGI layers between chains. When a hook raises
inside an `App`, the chain answers with `App.error_response`, through the
`after` hooks of the layers outside the failing one; the exception gets a
note naming the layer, for the log (the server's, when it is too late).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeGuard

from ..layer import Middleware, overrides
from ..sessions.session import SessionMiddleware
from ..types import Environ, Headers, StartResponse, WSGIApp
from .body_limit import BodyLimit
from .cors import CORS
from .csrf import CrossOriginProtection, csrf_exempt
from .etag import ETag
from .gzip import GZip
from .https_redirect import HTTPSRedirect
from .idempotency import Idempotency
from .proxy_fix import ProxyFix
from .rate_limit import RateLimit
from .request_id import RequestID, RequestIDFilter
from .security_headers import SecurityHeaders
from .trusted_host import TrustedHost

#: The declared order, outermost first. See the module docs for the reasons.
ORDER: tuple[type, ...] = (
    ProxyFix,
    RequestID,
    SecurityHeaders,
    TrustedHost,
    HTTPSRedirect,
    CORS,
    RateLimit,
    BodyLimit,
    CrossOriginProtection,
    SessionMiddleware,
    GZip,
    ETag,
    Idempotency,
)

LayerSpec = tuple[Callable[..., WSGIApp], dict[str, Any]]
#: What an `App` answers an exception with: ``on_error(environ, exc)`` -> a WSGI app.
ErrorResponder = Callable[[Environ, BaseException], WSGIApp]


def builtin_index(layer: Callable[..., WSGIApp]) -> int | None:
    """Where a built-in middleware class (or a subclass of one) is in `ORDER`; else None."""
    for index, known in enumerate(ORDER):
        if isinstance(layer, type) and issubclass(layer, known):
            return index
    return None


def slot(
    layer: Callable[..., WSGIApp],
    position: str | None = None,
    before: type | None = None,
    after: type | None = None,
) -> int:
    """The sort key of a middleware (smaller is outer; ties keep the order added): built-in
    i of `ORDER` is 2i+1, ``before=``/``after=`` it 2i and 2i+2, ``"outermost"`` -1."""
    name, index = getattr(layer, "__name__", repr(layer)), builtin_index(layer)
    if index is not None:
        if position or before or after:
            names = ["nothing", *(kind.__name__ for kind in ORDER), "the app"]
            raise ValueError(
                f"{name} cannot be moved: it runs after {names[index]} and before "
                f"{names[index + 2]}, for the security reasons listed in microweb.middleware.ORDER"
            )
        return 2 * index + 1
    if sum(choice is not None for choice in (position, before, after)) > 1:
        raise ValueError(f"app.use({name}, ...): give one of position=, before= or after=")
    anchor = before or after
    if anchor is not None:
        anchor_index = builtin_index(anchor)
        if anchor_index is None:
            raise ValueError(f"before=/after= name a built-in (in ORDER), not {anchor!r}")
        return 2 * anchor_index + (0 if before is not None else 2)
    if position not in (None, "outermost", "innermost"):
        raise ValueError(f"position is 'outermost' or 'innermost', not {position!r}")
    return -1 if position == "outermost" else 2 * len(ORDER) + 1


def is_hook_layer(layer: Callable[..., WSGIApp]) -> TypeGuard[type[Middleware]]:
    return isinstance(layer, type) and issubclass(layer, Middleware)


def build_stack(
    app: WSGIApp, specs: Sequence[LayerSpec], on_error: ErrorResponder | None = None
) -> WSGIApp:
    """Wrap `app` in the middleware `specs` (outermost first): runs of `Middleware` become
    `HookChain`\\ s, others plain WSGI layers; `on_error` (an App's) answers what hooks raise."""
    inner: WSGIApp = app
    run: list[Middleware] = []  # hook layers (innermost last) not yet chained around `inner`
    for layer, options in reversed(specs):
        if is_hook_layer(layer):
            # Built around the next layer in, so it also works called on its own.
            run.insert(0, layer(run[0] if run else inner, **options))
            continue
        if run:  # a plain layer: the hooks inside it become one chain first
            inner, run = HookChain(inner, run, on_error), []
        inner = layer(inner, **options)
    return HookChain(inner, run, on_error) if run else inner


def describe_stack(specs: Sequence[LayerSpec]) -> list[str]:
    """What runs for a request, in order (the rule of `build_stack`), secrets hidden."""
    lines = []
    for number, (layer, options) in enumerate(specs, 1):
        args = ", ".join(
            f"{key}=<hidden>" if "secret" in key else f"{key}={value!r}"
            for key, value in options.items()
        )
        name = getattr(layer, "__name__", repr(layer))
        if is_hook_layer(layer):
            hooks = [getattr(layer, hook) for hook in ("before", "after") if overrides(layer, hook)]
            runs = " + ".join(hook.__qualname__ for hook in hooks)
        else:
            runs = f"{name}.__call__, a WSGI layer around everything below"
        lines.append(f"  {number}. {name}({args})  runs: {runs or 'nothing'}")
    lines.append(f"  {len(specs) + 1}. the app: App.dispatch (routing, handler, errors)")
    return lines


class HookChain:
    """Run a stack of `Middleware` by calling their hooks: one frame instead of one per layer."""

    def __init__(
        self, app: WSGIApp, layers: list[Middleware], on_error: ErrorResponder | None = None
    ) -> None:
        self.app = app
        self.layers = layers
        self.on_error = on_error
        # PERF: bound methods of the layers that define each hook, computed once.
        self.befores = tuple(layer.before for layer in layers if overrides(type(layer), "before"))
        # afters_upto[i]: the `after` hooks of layers[:i], innermost first, which
        # is the order nested WSGI calls run them in.
        self.afters_upto = [
            tuple(layer.after for layer in reversed(layers[:i]) if overrides(type(layer), "after"))
            for i in range(len(layers) + 1)
        ]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        answer, depth = self.app, len(self.layers)
        before: Callable[[Environ], WSGIApp | None] | None = None  # the hook running, if any
        try:
            # PERF: the loop holds the hooks alone; a layer's place is looked up
            # only when it answers or raises (bench/ stack: 0.09 µs less than a
            # loop over (index, hook) pairs).
            for before in self.befores:
                early = before(environ)
                if early is not None:
                    answer, depth = early, self.layers.index(layer_of(before))
                    break
            before = None  # the `before` hooks are done: the answer runs
            afters = self.afters_upto[depth]
            if not afters:
                return answer(environ, start_response)
            # PERF: a partial (built in C) rather than a closure per request.
            return answer(environ, partial(run_afters, afters, environ, start_response))
        except Exception as exc:
            index = depth if before is None else self.layers.index(layer_of(before))
            return self.recover(environ, start_response, exc, index)

    def recover(
        self, environ: Environ, start_response: StartResponse, exc: Exception, index: int
    ) -> Iterable[bytes]:
        """Layer `index` raised (or an `after`, named in the environ by `run_afters`):
        the app's error response, through the `after` hooks of the layers outside it."""
        failed = environ.get(FAILED)
        if self.on_error is None or (failed is not None and failed not in self.layers):
            raise exc  # no App to answer; or another chain's layer failed: it answers
        if failed is not None:
            index = self.layers.index(environ.pop(FAILED))
        answer = self.on_error(environ, exc)
        info = (type(exc), exc, exc.__traceback__)

        # PEP 3333: with exc_info, a server replaces a status it has not sent yet.
        def start(status: str, headers: Headers, exc_info: Any = None) -> Any:
            return start_response(status, headers, info)

        return answer(environ, partial(run_afters, self.afters_upto[index], environ, start))


#: Where `run_afters` names the layer whose `after` raised.
FAILED = "microweb.failed_layer"


def run_afters(
    afters: Sequence[Callable[[Environ, str, Headers], None]],
    environ: Environ,
    start_response: StartResponse,
    status: str,
    headers: Headers,
    exc_info: Any = None,
) -> Any:
    """The ``start_response`` a `HookChain` hands the app: the `after` hooks, then the server's."""
    for after in afters:
        try:
            after(environ, status, headers)
        except Exception as exc:
            exc.add_note(f"raised in {after.__qualname__}, on a {status} response")
            environ[FAILED] = layer_of(after)
            raise
    return start_response(status, headers, exc_info)


def layer_of(hook: Callable[..., Any]) -> Middleware:
    """The layer a bound `before`/`after` hook belongs to."""
    return hook.__self__  # type: ignore[attr-defined,no-any-return]


__all__ = [
    "CORS",
    "ORDER",
    "BodyLimit",
    "CrossOriginProtection",
    "ETag",
    "GZip",
    "HTTPSRedirect",
    "HookChain",
    "Idempotency",
    "Middleware",
    "ProxyFix",
    "RateLimit",
    "RequestID",
    "RequestIDFilter",
    "SecurityHeaders",
    "TrustedHost",
    "build_stack",
    "csrf_exempt",
    "describe_stack",
    "slot",
]

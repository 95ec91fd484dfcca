"""The middleware stack: which middleware exist, the order they run in, and the loop
that runs them.

``app.use(Name, **options)`` adds a middleware. microweb's own take their
place in `ORDER`, wherever the call is written: a request meets them top to
bottom (a response, bottom to top). Your own middleware go where you say::

    app.use(Metrics, position="outermost")   # before everything, even ProxyFix
    app.use(Audit, before=CrossOriginProtection)
    app.use(Tracing, after=ProxyFix)         # sees the client address ProxyFix set
    app.use(Timing)                          # default: innermost, next to the app

``before=``/``after=`` name a built-in, in request order (``before=CORS``
runs just outside CORS); several at one place run in the order added.
Moving a built-in is refused with a `ValueError`: each place below has a
security reason. ``microweb routes module:app`` prints the result and what
each layer runs (`describe_stack`).

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
``start_response`` wrapper (`run_afters`). That is exactly what the nested
calls of ``Middleware.__call__`` do (an early answer from layer *n* is seen
by the `after` of layers 1..n-1 only), without a frame and a closure per
layer. Other middleware are plain WSGI layers between chains.

When a hook raises inside an `App` (a `before`, or an `after` before the
status reached the server, such as `SessionTooLarge`), the chain answers
with the app's error response (`App.error_response`, through its
``ErrorHandlers``), passed through the `after` hooks of the layers outside
the one that failed. The exception carries a note naming the layer
(``raised in CookieSessions.after``), which the log shows; when it is too
late (the status was sent) the server logs it, note included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, cast

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
PLACES = ("outermost", "innermost")


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
    """The sort key of a middleware in the stack (smaller is outer; ties keep the order added).

    Built-in number i of `ORDER` is at 2i+1; ``before=``/``after=`` it, at
    2i and 2i+2; ``"outermost"`` at -1; ``"innermost"`` (the default for
    your own) after all of them.
    """
    chosen = [choice for choice in (position, before, after) if choice is not None]
    index = builtin_index(layer)
    name = getattr(layer, "__name__", repr(layer))
    if index is not None:
        if chosen:
            outer = ORDER[index - 1].__name__ if index else "nothing"
            inner = ORDER[index + 1].__name__ if index + 1 < len(ORDER) else "the app"
            raise ValueError(
                f"{name} cannot be moved: it runs after {outer} and before {inner}, for "
                "the security reasons listed in microweb.middleware.ORDER (docs/middleware.md)"
            )
        return 2 * index + 1
    if len(chosen) > 1:
        raise ValueError(f"app.use({name}, ...): give one of position=, before= or after=")
    if before is not None or after is not None:
        anchor = cast(type, before or after)
        anchor_index = builtin_index(anchor)
        if anchor_index is None:
            known = ", ".join(kind.__name__ for kind in ORDER)
            raise ValueError(f"before=/after= name a built-in middleware ({known}), not {anchor!r}")
        return 2 * anchor_index + (0 if before is not None else 2)
    if position not in (None, *PLACES):
        raise ValueError(f"position is 'outermost' or 'innermost', not {position!r}")
    return -1 if position == "outermost" else 2 * len(ORDER) + 1


def is_hook_layer(layer: Callable[..., WSGIApp]) -> bool:
    return isinstance(layer, type) and issubclass(layer, Middleware)


def build_stack(
    app: WSGIApp, specs: Sequence[LayerSpec], on_error: ErrorResponder | None = None
) -> WSGIApp:
    """Wrap `app` in the middleware `specs` (in stack order, outermost first).

    Runs of consecutive `Middleware` become one `HookChain` each; any other
    middleware (one that wraps the body, or is not microweb's) is a plain
    WSGI layer between them. `on_error` (an App's) answers what a hook raises.
    """
    inner: WSGIApp = app
    run: list[Middleware] = []  # hook layers (innermost last) not yet chained around `inner`
    for layer, options in reversed(specs):
        if is_hook_layer(layer):
            # Built around the next layer in, so it also works called on its own.
            run.insert(0, cast(Middleware, layer(run[0] if run else inner, **options)))
            continue
        if run:  # a plain layer: the hooks inside it become one chain first
            inner, run = HookChain(inner, run, on_error), []
        inner = layer(inner, **options)
    return HookChain(inner, run, on_error) if run else inner


def describe_stack(specs: Sequence[LayerSpec]) -> list[str]:
    """What runs for a request, in order: one line per layer, then the app.

    The rule of `build_stack`: a `Middleware` runs its own `before` and
    `after` (those its class defines, named where they are written) from a
    `HookChain`; anything else is called as a WSGI app. Secrets are hidden.
    """
    lines = []
    for number, (layer, options) in enumerate(specs, 1):
        args = ", ".join(
            f"{key}=<hidden>" if "secret" in key else f"{key}={value!r}"
            for key, value in options.items()
        )
        name = getattr(layer, "__name__", repr(layer))
        if is_hook_layer(layer):
            hooks = [getattr(layer, hook) for hook in ("before", "after")]
            no_ops = (Middleware.before, Middleware.after)
            runs = " + ".join(hook.__qualname__ for hook in hooks if hook not in no_ops)
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
        self.befores = [
            (i, layer.before) for i, layer in enumerate(layers) if overrides(layer, "before")
        ]
        # afters_upto[i]: the `after` hooks of layers[:i], innermost first, which
        # is the order nested WSGI calls run them in.
        self.afters_upto = [
            tuple(layer.after for layer in reversed(layers[:i]) if overrides(layer, "after"))
            for i in range(len(layers) + 1)
        ]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        answer, depth, index = self.app, len(self.layers), 0
        try:
            for index, before in self.befores:
                early = before(environ)
                if early is not None:
                    answer, depth = early, index
                    break
            index = depth  # the `before` hooks are done: the answer runs
            afters = self.afters_upto[depth]
            if not afters:
                return answer(environ, start_response)
            # PERF: a partial (built in C) rather than a closure per request.
            return answer(environ, partial(run_afters, afters, environ, start_response))
        except Exception as exc:
            return self.recover(environ, start_response, exc, index)

    def recover(
        self, environ: Environ, start_response: StartResponse, exc: Exception, index: int
    ) -> Iterable[bytes]:
        """Layer `index` (or whatever runs inside the chain) raised: answer with the app's
        error response, through the `after` hooks of the layers outside it.

        An `after` that raised comes as `AfterFailed`, naming its layer. Without
        an App (`on_error` None) the exception goes on, and so does the failure
        of an `after` of another chain's layer (that chain answers it).
        """
        cause: BaseException = exc
        if isinstance(exc, AfterFailed):
            cause = cast(BaseException, exc.__cause__)
            if self.on_error is not None and exc.layer not in self.layers:
                raise exc
            index = self.layers.index(exc.layer) if self.on_error is not None else index
        if self.on_error is None:
            raise cause
        answer = self.on_error(environ, cause)
        info = (type(cause), cause, cause.__traceback__)

        # PEP 3333: with exc_info, a server replaces a status it has not sent yet.
        def start(status: str, headers: Headers, exc_info: Any = None) -> Any:
            return start_response(status, headers, info)

        return answer(environ, partial(run_afters, self.afters_upto[index], environ, start))


class AfterFailed(Exception):
    """`layer`'s `after` raised (the exception is the `__cause__`)."""

    def __init__(self, layer: Middleware) -> None:
        super().__init__(f"{type(layer).__name__}.after raised")
        self.layer = layer


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
            layer = cast(Middleware, getattr(after, "__self__"))  # noqa: B009
            exc.add_note(f"raised in {type(layer).__name__}.after, on a {status} response")
            raise AfterFailed(layer) from exc
    return start_response(status, headers, exc_info)


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

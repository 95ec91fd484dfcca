"""`ETag`: validators for buffered responses, and conditional requests answered early.

``ETag(app, require_if_match=False)`` wraps any PEP 3333 app. It is a plain
WSGI wrapper, not a `Middleware` hook: it must see the body, and may
replace the whole response.

**GET and HEAD** (RFC 9110 §13.2.2, steps 1-4):

1. The app runs. A HEAD runs it as a GET (on a copy of the environ): the
   ETag is a hash of the GET body, and §9.3.2 asks HEAD for the same
   header fields as GET. The body is then closed unsent; a stream is never
   iterated. (An app's own HEAD handler is therefore not called behind
   ETag; a HEAD whose GET is not a 200 is re-run as HEAD and passed on.)
2. A 200 that has no ``ETag`` and a *buffered* body gets a strong one
   (§8.8.3): `conditional.etag_of_chunks`, a hash of exactly the bytes it
   will send (already gzipped ones too). Buffered means the app returned a
   ``list`` or ``tuple``. NOTE: a generator, a file wrapper or any other
   iterable is never consumed to hash it, even with a ``Content-Length``
   (Flask returns a ``ClosingIterator``): that could hold a large or slow
   body in memory. Such a response keeps the ETag the app gave it, if any.
3. The request's preconditions are evaluated against the response's
   ``ETag`` (ours or the app's) and ``Last-Modified``
   (`http.evaluate`). A failed ``If-None-Match`` or
   ``If-Modified-Since`` is a 304 with no body (§15.4.5); a failed
   ``If-Match`` / ``If-Unmodified-Since`` a 412. The body is closed unsent.
4. Otherwise the response goes out with its ETag. 206s, other 2xx and
   errors are passed on untouched (§13.2.1: conditions only apply to a
   response that would be 2xx).

**Unsafe methods** (POST, PUT, PATCH, DELETE and any method not safe by
§9.2.1): preconditions are checked *before* the app runs, so a request
that fails them changes nothing (§13.1.1: "MUST evaluate ... prior to
performing the method"). To know the current validators, the middleware
asks the app: it sends it a GET for the same URL with no body and no
conditions (a *probe*), reads status, ``ETag`` and ``Last-Modified``
(hashing a buffered body exactly as step 2 would), and closes it unsent.
A probe that is not 2xx (404, 410...) means "no current representation":
``If-Match: *`` fails. PERF: the probe costs one extra GET, and only for
requests that carry ``If-Match``, ``If-None-Match`` or
``If-Unmodified-Since``; every other request costs nothing extra. A
handler that knows its validators can skip the probe entirely with
`microweb.conditional.check_preconditions`.

``require_if_match=True`` answers 428 Precondition Required (RFC 6585 §3)
to a PUT, PATCH or DELETE without ``If-Match``; pass a list of methods to
choose others. POST is not in the default: it usually creates a resource,
which has no ETag to match yet.

With GZip: the tag is computed over the bytes this layer sees, so no two
representations share a strong ETag (§8.8.3) in either order. Inside GZip
(the declared order) that is the identity body, ``"x"``; GZip sends the
gzip one as ``"x-gzip"`` and turns the client's ``"x-gzip"`` back into
``"x"`` on the way in, so the 304 is decided here. Outside GZip, a
buffered gzip body is hashed as it is (GZip's output is deterministic), so
it gets a tag of its own; a streamed one gets none.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

from ..conditional import PRECONDITION_REQUIRED, etag_of_chunks, failed_detail
from ..errors import HTTPError, send_error
from ..http import SAFE_METHODS, evaluate, not_modified_headers, parse_http_date, unsafe_methods
from ..response import status_line
from ..types import Environ, Headers, StartResponse, WSGIApp
from ..wsgi import Captured, close_quietly

# What a probe must not carry: a body, or the conditions being decided
# (a conditional-aware app would answer the probe 304 or 206).
_NOT_IN_PROBE = frozenset(
    {
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_IF_MATCH",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_IF_UNMODIFIED_SINCE",
        "HTTP_IF_RANGE",
        "HTTP_RANGE",
    }
)

#: The methods ``require_if_match=True`` covers: those that change the target itself.
DEFAULT_REQUIRED = ("PUT", "PATCH", "DELETE")

Validators = tuple[bool, str | None, int | None]  # (exists, etag, last-modified seconds)


def buffered_etag(captured: Captured, body: Iterable[bytes]) -> str | None:
    """The strong ETag step 2 adds to a held-back 200, or None when it adds none."""
    if (
        captured.status is None
        or not captured.status.startswith("200")
        or not isinstance(body, list | tuple)
        or captured.written
    ):
        return None
    return etag_of_chunks(body)


class ETag:
    """Strong ETags for buffered 200s; 304, 412 and 428 per RFC 9110 §13 and RFC 6585 §3."""

    def __init__(self, app: WSGIApp, require_if_match: bool | Iterable[str] = False) -> None:
        self.app = app
        if isinstance(require_if_match, bool):
            self.required = frozenset(DEFAULT_REQUIRED if require_if_match else ())
        else:
            self.required = unsafe_methods("ETag(require_if_match=...)", require_if_match)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET" or method == "HEAD":
            return self.serve_safe(environ, start_response, method == "HEAD")
        if method in SAFE_METHODS:  # OPTIONS, TRACE: nothing to validate
            return self.app(environ, start_response)
        # RFC 6585 §3: the server insists on a conditional request.
        if method in self.required and "HTTP_IF_MATCH" not in environ:
            return send_error(HTTPError(428, PRECONDITION_REQUIRED), environ, start_response)
        if (
            "HTTP_IF_MATCH" in environ
            or "HTTP_IF_NONE_MATCH" in environ
            or "HTTP_IF_UNMODIFIED_SINCE" in environ
        ):
            exists, etag, last_modified = self.current(environ)
            failure = evaluate(environ, etag, last_modified, exists)
            if failure is not None:  # 412: the handler never runs, nothing changes
                return send_error(HTTPError(412, failed_detail(failure)), environ, start_response)
        return self.app(environ, start_response)

    def serve_safe(
        self, environ: Environ, start_response: StartResponse, head: bool
    ) -> Iterable[bytes]:
        """Steps 1-4 of the module docs, for a GET or a HEAD."""
        # 1. Run the app; a HEAD as a GET, so its ETag is the GET body's.
        captured = Captured()
        body = self.app({**environ, "REQUEST_METHOD": "GET"} if head else environ, captured)
        if captured.status is None or not captured.status.startswith("200"):
            if head:  # not ours to change: the app answers the HEAD itself
                close_quietly(body)
                return self.app(environ, start_response)
            if captured.status is None:  # a lazily started stream
                captured.forward = start_response
                return body
            return send(captured, captured.headers, body, start_response)
        # 2. The validators; a buffered body without an ETag gets one.
        headers, etag = captured.headers, captured.header("etag")
        if etag is None:
            etag = buffered_etag(captured, body)
            if etag is not None:
                headers = [*headers, ("ETag", etag)]
        # 3. The preconditions (RFC 9110 §13.2.2).
        last_modified = parse_http_date(captured.header("last-modified"))
        failure = evaluate(environ, etag, last_modified)
        if failure is not None:
            close_quietly(body)  # never sent, never iterated
            if failure.status == 412:
                return send_error(HTTPError(412, failed_detail(failure)), environ, start_response)
            start_response(status_line(304), not_modified_headers(headers))
            return []
        # 4. Send it. RFC 9110 §9.3.2: a HEAD gets the GET's header fields, no body.
        if head:
            close_quietly(body)
            start_response(captured.status, headers, captured.exc_info)
            return []
        return send(captured, headers, body, start_response)

    def current(self, environ: Environ) -> Validators:
        """The resource's current validators, from a GET probe of the same URL (see above)."""
        probe = {
            key: value
            for key, value in environ.items()
            # NOTE: WebOb caches parsed state under "webob.*" keys; the probe starts clean.
            if key not in _NOT_IN_PROBE and not key.startswith("webob.")
        }
        probe["REQUEST_METHOD"] = "GET"
        probe["wsgi.input"] = io.BytesIO()
        captured = Captured()
        body = self.app(probe, captured)
        try:
            if captured.status is None or not captured.status.startswith("2"):
                return False, None, None  # RFC 9110 §13.1.1: no current representation
            etag = captured.header("etag") or buffered_etag(captured, body)
            return True, etag, parse_http_date(captured.header("last-modified"))
        finally:
            close_quietly(body)  # the probe's body is never iterated nor sent


def send(
    captured: Captured, headers: Headers, body: Iterable[bytes], start_response: StartResponse
) -> Iterable[bytes]:
    """Pass a held-back response on: status, headers, what the app wrote, then its body."""
    write: Callable[[bytes], object] = start_response(captured.status, headers, captured.exc_info)
    for chunk in captured.written:
        write(chunk)
    return body  # the app's own iterable: the server's close() reaches it


"""The debug page: what a 5xx caused by an exception shows when ``app.debug`` is on.

Only with ``App(debug=True)``, which ``microweb dev`` sets in its workers
(`microweb.devserver`); ``microweb run`` never does. In production the
client gets the bare 500 of `microweb.errors`, and the traceback goes to
the log only: file paths and source lines help an attacker map the code.

The page is negotiated like every error (RFC 9110 §12.5.1, `errors.prefers_html`):

- **HTML**, for a browser: the exception, then each frame of the traceback
  (most recent call last, as Python prints it) with a few source lines
  around the line that ran, then a summary of the request (method, URL,
  client, headers);
- **problem+json** (RFC 9457), for an API client: the usual members plus
  three extension members (RFC 9457 §3.2) that a program can read::

      "exception": "ZeroDivisionError: division by zero",
      "traceback": [{"file": "notes.py", "line": 42, "function": "show",
                     "code": "return 1 / 0"}, ...],     # innermost last
      "request": {"method": "GET", "path": "/notes/1", "query": ""}

  An exception raised while handling another (``raise X from Y``, or an
  error in an ``except`` block) adds ``"chain"``: the earlier exceptions,
  each with its own ``exception`` and ``traceback``, oldest first.

SECURITY: credentials in the request (``Authorization``, ``Cookie``) are
shown as their length only, so a shared screenshot does not leak them.
"""

from __future__ import annotations

import html
import linecache
import os
from traceback import TracebackException
from typing import Any

import webob

from .errors import HTML, PROBLEM_JSON, HTTPError, prefers_html, problem_body
from .response import Reply

CONTEXT = 3  # source lines shown before and after the line that ran
MAX_FRAMES = 50  # the innermost ones: a RecursionError has a thousand
HIDDEN_HEADERS = frozenset({"AUTHORIZATION", "COOKIE", "PROXY_AUTHORIZATION"})
STYLE = (
    "body{font:15px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}"
    "pre{background:#f4f4f4;padding:.5em;overflow-x:auto}"
    "mark{background:#ffe08a}td{padding:0 1em 0 0;vertical-align:top}"
)


def render(req: webob.Request, error: HTTPError, exc: BaseException) -> Reply:
    """The debug page for `error`, caused by `exc`, as HTML or problem+json for `req`."""
    chain = exception_chain(exc)
    if prefers_html(req.environ.get("HTTP_ACCEPT", "")):
        return Reply(error.status, error.headers, html_page(req, error, chain), HTML)
    *earlier, last = chain
    members = exception_member(last)
    if earlier:
        members["chain"] = [exception_member(e) for e in earlier]
    members["request"] = {"method": req.method, "path": req.path_info, "query": req.query_string}
    return Reply(error.status, error.headers, problem_body(error, members), PROBLEM_JSON)


def exception_chain(exc: BaseException) -> list[TracebackException]:
    """`exc` and the exceptions it was raised from or during, oldest first."""
    chain: list[TracebackException] = []
    current: TracebackException | None = TracebackException.from_exception(exc, limit=-MAX_FRAMES)
    while current is not None:
        chain.insert(0, current)
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__
    return chain


def headline(exc: TracebackException) -> str:
    return "".join(exc.format_exception_only()).strip()


def short_path(filename: str) -> str:
    """A path relative to the working directory when the file is under it."""
    relative = os.path.relpath(filename) if os.path.isabs(filename) else filename
    return filename if relative.startswith("..") else relative


def exception_member(exc: TracebackException) -> dict[str, Any]:
    frames = [
        {
            "file": short_path(frame.filename),
            "line": frame.lineno,
            "function": frame.name,
            "code": frame.line or "",
        }
        for frame in exc.stack
    ]
    return {"exception": headline(exc), "traceback": frames}


def source_lines(filename: str, lineno: int | None) -> str:
    """HTML for the lines around `lineno`, the one that ran marked."""
    if lineno is None:
        return ""
    linecache.checkcache(filename)  # NOTE: the file may have been edited since it was loaded
    lines = linecache.getlines(filename)
    first = max(lineno - CONTEXT, 1)
    shown = []
    for number in range(first, min(lineno + CONTEXT, len(lines)) + 1):
        text = html.escape(f"{number:>5}  {lines[number - 1].rstrip()}")
        shown.append(f"<mark>{text}</mark>" if number == lineno else text)
    return "<pre>" + "\n".join(shown) + "</pre>" if shown else ""


def html_page(req: webob.Request, error: HTTPError, chain: list[TracebackException]) -> bytes:
    escape = html.escape
    heading = escape(headline(chain[-1]))
    status, title, detail = error.status, error.title, error.detail
    parts = [
        '<!doctype html>\n<html lang="en"><meta charset="utf-8">',
        f"<title>{status} {escape(title)}: {heading}</title><style>{STYLE}</style>",
        f"<h1>{heading}</h1>",
        f"<p>{status} {escape(title)} for <code>{escape(req.method)} {escape(req.path_qs)}</code>"
        " &mdash; this page shows because the app runs with <code>debug=True</code>"
        " (<code>microweb dev</code>); it is never shown by <code>microweb run</code>.</p>",
    ]
    if detail:
        parts.append(f"<p>{escape(detail)}</p>")
    for number, exc in enumerate(chain):
        if number and exc.__cause__ is chain[number - 1]:
            parts.append("<p>The exception above was the direct cause of this one:</p>")
        elif number:
            parts.append("<p>While handling the exception above, another one happened:</p>")
        parts.append(f"<h2>Traceback (most recent call last): {escape(headline(exc))}</h2>")
        for frame in exc.stack:
            where = f"{short_path(frame.filename)}, line {frame.lineno}, in {frame.name}"
            parts.append(f"<h3><code>{escape(where)}</code></h3>")
            parts.append(source_lines(frame.filename, frame.lineno))
    parts.append("<h2>Request</h2><table>")
    parts.append(f"<tr><td>client</td><td>{escape(str(req.client_addr))}</td></tr>")
    for name, value in request_headers(req.environ):
        parts.append(f"<tr><td>{escape(name)}</td><td>{escape(value)}</td></tr>")
    parts.append("</table>\n</html>\n")
    return "\n".join(parts).encode()


def request_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The request's headers from the environ, credentials shown as their length."""
    headers = []
    for key, value in sorted(environ.items()):
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key
        else:
            continue
        shown = f"({len(value)} characters, hidden)" if name in HIDDEN_HEADERS else str(value)
        headers.append((name.replace("_", "-").title(), shown))
    return headers

"""How one request is made, checked and timed: the server's side of the bench.

Each call does what a WSGI server does for a request, and nothing else:

1. copy a prebuilt environ template (``dict(template)``); the template is
   the same for every framework: CGI variables, ``HTTP_*`` headers of a
   plain client, ``wsgi.*`` keys, ``SERVER_PROTOCOL`` HTTP/1.1;
2. give it a fresh ``wsgi.input`` (``io.BytesIO`` of the request body, empty
   for a GET), as a server does per request;
3. call the app with a trivial ``start_response``;
4. iterate the returned body to the end, then call its ``close()`` if it
   has one (PEP 3333: frameworks release per-request state there).

That cost is in every number, the bare app's too, so the ratios slightly
understate framework overhead; nothing is subtracted.

Checking (`call_once` + `check`) goes through `wsgiref.validate.validator`,
so the environ template and every app's answer are PEP 3333-clean before
anything is timed. Timing (`time_calls`) uses the same steps in a tight
loop, timed with `time.perf_counter_ns` over a batch of calls.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any
from wsgiref.validate import validator

from scenarios import TEXT, Scenario

App = Callable[..., Any]

BASE_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "50312",
    "HTTP_HOST": "localhost:8000",
    "HTTP_USER_AGENT": "microweb-bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "HTTP_ACCEPT_ENCODING": "gzip, deflate",
    "HTTP_CONNECTION": "keep-alive",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}


def environ_template(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
    """The environ every framework gets for this request (copied per call)."""
    template = dict(BASE_ENVIRON, REQUEST_METHOD=method, PATH_INFO=path)
    if body:
        template["CONTENT_TYPE"] = "application/json"
        template["CONTENT_LENGTH"] = str(len(body))
    return template


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def _write(data: bytes) -> None:
    pass


def time_calls(app: App, template: dict[str, Any], body: bytes, n: int) -> float:
    """Nanoseconds per call, over `n` calls made exactly as a server makes them."""
    new_input = io.BytesIO
    start_response = _start_response
    started = perf_counter_ns()
    for _ in range(n):
        environ = dict(template)
        environ["wsgi.input"] = new_input(body)
        result = app(environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (perf_counter_ns() - started) / n


def null_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A WSGI app that does nothing: timing it gives the harness's own cost per call."""
    start_response("200 OK", [("Content-Length", "0")])
    return []


def calls_per_batch(app: App, template: dict[str, Any], body: bytes, batch_ns: float) -> int:
    """How many calls fill a batch of `batch_ns`; the probing doubles as a warm-up."""
    n = 1
    while True:
        per_call = time_calls(app, template, body, n)
        if per_call * n >= batch_ns / 10 or n >= 1 << 20:
            return max(3, round(batch_ns / per_call))
        n *= 4


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    problems: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def call_once(app: App, method: str, path: str, body: bytes = b"") -> Answer:
    """One request through the PEP 3333 validator; its warnings become problems."""
    seen: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return chunks.append

    environ = environ_template(method, path, body)
    environ["wsgi.input"] = io.BytesIO(body)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = validator(app)(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except AssertionError as exc:
            return Answer(0, [], b"", [f"WSGI validator: {exc}"])
    answer = Answer(int(seen["status"].split()[0]), list(seen["headers"]), b"".join(chunks))
    answer.problems += [f"WSGI validator: {w.message}" for w in caught]
    return answer


def check(scenario: Scenario, answer: Answer) -> list[str]:
    """What is wrong with `answer`, as a list of sentences (empty: it is right)."""
    problems = list(answer.problems)
    if answer.status != scenario.status:
        problems.append(f"status {answer.status}, expected {scenario.status}")
        return problems
    content_type = (answer.header("Content-Type") or "").lower()
    length = answer.header("Content-Length")
    if scenario.check == "text":
        if answer.body != scenario.expect:
            problems.append(f"body {answer.body[:60]!r}, expected {scenario.expect!r}")
        if content_type != TEXT:
            problems.append(f"Content-Type {content_type!r}, expected {TEXT!r}")
    elif scenario.check == "head":
        expected = len(scenario.expect) if isinstance(scenario.expect, bytes) else 0
        if answer.body:
            problems.append(f"HEAD answered a body: {answer.body[:60]!r}")
        if content_type != TEXT:
            problems.append(f"Content-Type {content_type!r}, expected {TEXT!r}")
        if length != str(expected):
            problems.append(f"HEAD Content-Length {length!r}, expected {expected}")
        return problems
    elif scenario.check == "json":
        try:
            decoded = json.loads(answer.body)
        except ValueError:
            decoded = "<not JSON>"
        if decoded != scenario.expect:
            problems.append(f"JSON body differs: {answer.body[:60]!r}...")
        if content_type.split(";")[0].strip() != "application/json":
            problems.append(f"Content-Type {content_type!r}, expected application/json")
    elif scenario.status == 405 and not answer.header("Allow"):
        problems.append("405 without an Allow header (RFC 9110 §15.5.6)")
    if scenario.check != "status" and length != str(len(answer.body)):
        problems.append(f"Content-Length {length!r} for a body of {len(answer.body)} bytes")
    return problems

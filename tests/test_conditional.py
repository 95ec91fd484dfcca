"""microweb/conditional.py: validators and preconditions (RFC 9110 §8.8, §13; RFC 6585 §3).

Pure functions are tested as tables; `check_preconditions` through a
microweb `App` under WebTest's lint (`Client`), as a handler uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import webob
from scaling import assert_linear

from microweb import App, HTTPError, Request
from microweb.conditional import check_preconditions, etag_of_chunks, make_etag
from microweb.http import etag_matches, evaluate, parse_etag, parse_etag_list, parse_http_date
from microweb.testing import Client

DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
SECONDS = 784111777  # DATE as a POSIX timestamp


# -- make_etag: RFC 9110 §8.8.3 ---------------------------------------------------


def test_make_etag_is_a_strong_quoted_tag_of_the_bytes() -> None:
    tag = make_etag(b"hello")
    assert parse_etag(tag) == (False, tag[1:-1])
    assert len(tag) == 24 and tag == make_etag(b"hello") != make_etag(b"hellp")
    assert etag_of_chunks([b"he", b"", b"llo"]) == tag


# -- Parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('"a"', [(False, "a")], id="8.8.3-strong"),
        pytest.param('W/"a"', [(True, "a")], id="8.8.3-weak"),
        pytest.param('""', [(False, "")], id="8.8.3-empty-opaque-tag"),
        pytest.param('"a", W/"b" ,"c"', [(False, "a"), (True, "b"), (False, "c")], id="list"),
        pytest.param('"a,b"', [(False, "a,b")], id="comma-inside-a-tag"),
        pytest.param(' , "a",, "b" ,', [(False, "a"), (False, "b")], id="5.6.1-empty-elements"),
        pytest.param("a", [], id="malformed-unquoted"),
        pytest.param('"a', [], id="malformed-unterminated"),
        pytest.param('w/"a"', [], id="malformed-lowercase-w"),
        pytest.param('"a" "b"', [], id="malformed-no-comma"),
        pytest.param('"a", *', [], id="malformed-star-in-list"),
        pytest.param('"a b"', [], id="malformed-space-in-tag"),
        pytest.param('"\x7f"', [], id="malformed-control-char"),
        pytest.param('"\xe9"', [(False, "\xe9")], id="obs-text-allowed"),
    ],
)
def test_parse_etag_list(value: str, expected: list[tuple[bool, str]]) -> None:
    assert parse_etag_list(value) == expected


@pytest.mark.parametrize(
    ("header", "etag", "exists", "strong", "expected"),
    [
        pytest.param('"a"', '"a"', True, True, True, id="8.8.3.2-strong-equal"),
        pytest.param('W/"a"', '"a"', True, True, False, id="8.8.3.2-strong-weak-request"),
        pytest.param('"a"', 'W/"a"', True, True, False, id="8.8.3.2-strong-weak-current"),
        pytest.param('W/"a"', 'W/"a"', True, False, True, id="8.8.3.2-weak-both-weak"),
        pytest.param('W/"a"', '"a"', True, False, True, id="8.8.3.2-weak-mixed"),
        pytest.param('"b", "a"', '"a"', True, True, True, id="13.1.1-any-in-list"),
        pytest.param('"b"', '"a"', True, False, False, id="no-match"),
        pytest.param('"ab"', '"a"', True, False, False, id="substring-is-no-match"),
        pytest.param("*", None, True, True, True, id="13.1.1-star-exists"),
        pytest.param("*", '"a"', False, True, False, id="13.1.1-star-missing"),
        pytest.param(" * ", '"a"', True, False, True, id="star-with-spaces"),
        pytest.param('"a"', None, True, False, False, id="no-current-etag"),
        pytest.param('"a"', "a", True, False, False, id="malformed-current-etag"),
        pytest.param("a", '"a"', True, False, False, id="malformed-header-no-match"),
        pytest.param("", '"a"', True, True, False, id="empty-header-no-match"),
    ],
)
def test_etag_matches(
    header: str, etag: str | None, exists: bool, strong: bool, expected: bool
) -> None:
    assert etag_matches(header, etag, exists, strong) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(DATE, SECONDS, id="5.6.7-IMF-fixdate"),
        pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", SECONDS, id="5.6.7-rfc850"),
        pytest.param("Sun Nov  6 08:49:37 1994", SECONDS, id="5.6.7-asctime"),
        pytest.param("yesterday", None, id="garbage"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
        pytest.param(f"{DATE}, {DATE}", None, id="13.1.3-a-list-is-invalid"),
        pytest.param("Sun, 06 Nov 99999 08:49:37 GMT", None, id="year-out-of-range"),
        pytest.param("Sun, 31 Feb 1994 08:49:37 GMT", None, id="no-such-day"),
        pytest.param("x" * 100_000, None, id="huge"),
    ],
)
def test_parse_http_date(value: str | None, expected: int | None) -> None:
    assert parse_http_date(value) == expected


# -- evaluate: the order of RFC 9110 §13.2.2 ----------------------------------------

LATER, EARLIER = "Mon, 07 Nov 1994 08:49:37 GMT", "Sat, 05 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    ("method", "headers", "exists", "expected"),
    [
        pytest.param("PUT", {}, True, None, id="no-conditions"),
        pytest.param("PUT", {"IF_MATCH": '"v1"'}, True, None, id="13.1.1-if-match-holds"),
        pytest.param("PUT", {"IF_MATCH": '"v0"'}, True, (412, "If-Match"), id="13.1.1-stale"),
        pytest.param("PUT", {"IF_MATCH": "*"}, False, (412, "If-Match"), id="13.1.1-star-missing"),
        pytest.param("PUT", {"IF_MATCH": "*"}, True, None, id="13.1.1-star-exists"),
        pytest.param(
            "PUT", {"IF_UNMODIFIED_SINCE": EARLIER}, True, (412, "If-Unmodified-Since"),
            id="13.1.4-modified-since",
        ),
        pytest.param("PUT", {"IF_UNMODIFIED_SINCE": DATE}, True, None, id="13.1.4-same-second"),
        pytest.param(
            "PUT", {"IF_MATCH": '"v1"', "IF_UNMODIFIED_SINCE": EARLIER}, True, None,
            id="13.1.4-ignored-with-if-match",
        ),
        pytest.param("PUT", {"IF_UNMODIFIED_SINCE": "junk"}, True, None, id="13.1.4-bad-date"),
        pytest.param(
            "PUT", {"IF_NONE_MATCH": "*"}, True, (412, "If-None-Match"),
            id="13.1.2-create-only-exists",
        ),
        pytest.param("PUT", {"IF_NONE_MATCH": "*"}, False, None, id="13.1.2-create-only-new"),
        pytest.param(
            "GET", {"IF_NONE_MATCH": 'W/"v1"'}, True, (304, "If-None-Match"),
            id="13.1.2-weak-comparison-304",
        ),
        pytest.param(
            "HEAD", {"IF_NONE_MATCH": '"x", "v1"'}, True, (304, "If-None-Match"), id="13.1.2-list"
        ),
        pytest.param("GET", {"IF_NONE_MATCH": '"v0"'}, True, None, id="13.1.2-changed"),
        pytest.param(
            "GET", {"IF_MODIFIED_SINCE": DATE}, True, (304, "If-Modified-Since"),
            id="13.1.3-not-modified",
        ),
        pytest.param("GET", {"IF_MODIFIED_SINCE": EARLIER}, True, None, id="13.1.3-modified"),
        pytest.param(
            "GET", {"IF_MODIFIED_SINCE": LATER, "IF_NONE_MATCH": '"v0"'}, True, None,
            id="13.1.3-ignored-with-if-none-match",
        ),
        pytest.param("POST", {"IF_MODIFIED_SINCE": LATER}, True, None, id="13.1.3-get-head-only"),
        pytest.param(
            "GET", {"IF_MATCH": '"v0"', "IF_NONE_MATCH": '"v1"'}, True, (412, "If-Match"),
            id="13.2.2-if-match-first",
        ),
    ],
)  # fmt: skip
def test_evaluate(
    method: str, headers: dict[str, str], exists: bool, expected: tuple[int, str] | None
) -> None:
    environ = {"REQUEST_METHOD": method, **{f"HTTP_{k}": v for k, v in headers.items()}}
    assert evaluate(environ, '"v1"', SECONDS, exists) == expected


def test_a_10000_entry_list_is_evaluated_in_linear_time() -> None:
    """Hostile: a huge If-None-Match list is linear work: 10,000 tags cost about 10 times
    1,000 (scaling.py)."""

    def evaluate_lists(count: int) -> Callable[[], None]:
        header = ", ".join(f'"tag-{n}"' for n in range(count))
        last = f'"tag-{count - 1}"'

        def work() -> None:
            for value, etag, matches in [
                (header, last, True),
                (header, '"tag-1"0"', False),
                (header + ", junk", last, False),
            ]:
                environ = {"REQUEST_METHOD": "GET", "HTTP_IF_NONE_MATCH": value}
                assert bool(evaluate(environ, etag, None)) is matches

        return work

    assert_linear(evaluate_lists, 1_000)


# -- check_preconditions: optimistic locking in the handler -------------------------


def notes_app() -> tuple[App, dict[str, Any]]:
    """One note; PUT replaces it only when the client saw the current version."""
    state: dict[str, Any] = {"text": b"first", "writes": 0, "updated": 1_000_000_000.5}
    app = App()

    @app.route("/note", methods=["GET", "PUT", "DELETE"])
    def note(req: Request) -> Any:
        tag = make_etag(state["text"]) if state["text"] is not None else None
        if req.method == "GET":
            if tag is None:
                raise HTTPError(404)
            return webob.Response(body=state["text"], etag=tag[1:-1], content_type="text/plain")
        check_preconditions(req, etag=tag, last_modified=state["updated"], required=True)
        state["writes"] += 1
        state["text"] = None if req.method == "DELETE" else req.body
        return None

    return app, state


def test_optimistic_locking_in_the_handler() -> None:
    """RFC 9110 §13.1.1: the second writer with a stale ETag gets 412; nothing changes."""
    app, state = notes_app()
    client = Client(app)
    tag = client.get("/note").headers["ETag"]
    client.put("/note", b"second", headers={"If-Match": tag}, status=204)
    response = client.put("/note", b"third", headers={"If-Match": tag}, status=412)
    assert response.json["status"] == 412 and "If-Match" in response.json["detail"]
    assert state == {"text": b"second", "writes": 1, "updated": 1_000_000_000.5}


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        pytest.param("PUT", {}, 428, id="rfc6585-3-if-match-required"),
        pytest.param("PUT", {"If-Match": "*"}, 204, id="13.1.1-star"),
        pytest.param("PUT", {"If-Match": make_etag(b"first")}, 204, id="13.1.1-current"),
        pytest.param("PUT", {"If-Match": "garbage"}, 412, id="malformed-if-match-no-match"),
        pytest.param(
            "DELETE", {"If-Match": "*", "If-Unmodified-Since": DATE}, 204,
            id="13.1.4-ignored-with-if-match",
        ),
        pytest.param(
            "PUT", {"If-Match": "*", "If-None-Match": "*"}, 412, id="13.1.2-star-exists"
        ),
    ],
)  # fmt: skip
def test_check_preconditions_table(method: str, headers: dict[str, str], status: int) -> None:
    app, state = notes_app()
    Client(app).request("/note", method=method, headers=headers, body=b"x", status=status)
    assert state["writes"] == (1 if status < 300 else 0)


def test_if_unmodified_since_uses_whole_seconds() -> None:
    """RFC 9110 §5.6.7: a fractional mtime equals the date of its second (no spurious 412)."""
    app, state = notes_app()
    state["updated"] = datetime.fromtimestamp(SECONDS + 0.9, UTC)
    client = Client(app)
    client.put("/note", b"x", headers={"If-Match": "*", "If-Unmodified-Since": DATE}, status=204)
    req = webob.Request.blank("/", method="PATCH", headers={"If-Unmodified-Since": EARLIER})
    with pytest.raises(HTTPError) as raised:
        check_preconditions(req, last_modified=state["updated"])
    assert raised.value.status == 412


@pytest.mark.parametrize(
    ("etag", "exists", "headers", "fails"),
    [
        pytest.param("abc", None, {"If-Match": '"abc"'}, False, id="bare-value-is-quoted"),
        pytest.param('W/"abc"', None, {"If-Match": 'W/"abc"'}, True, id="8.8.3.2-weak-tag"),
        pytest.param(None, None, {"If-Match": "*"}, True, id="no-validator-means-missing"),
        pytest.param(None, False, {"If-None-Match": "*"}, False, id="create-only-new"),
        pytest.param(None, True, {"If-Match": "*"}, False, id="exists-without-validators"),
    ],
)  # fmt: skip
def test_check_preconditions_arguments(
    etag: str | None, exists: bool | None, headers: dict[str, str], fails: bool
) -> None:
    req = webob.Request.blank("/", method="PUT", headers=headers)
    if fails:
        with pytest.raises(HTTPError):
            check_preconditions(req, etag=etag, exists=exists)
    else:
        check_preconditions(req, etag=etag, exists=exists)


def test_check_preconditions_leaves_safe_methods_alone() -> None:
    """A 304 is not an error: GET/HEAD conditions are the ETag middleware's job."""
    req = webob.Request.blank("/", headers={"If-None-Match": '"a"', "If-Match": '"b"'})
    check_preconditions(req, etag='"a"', required=True)


def test_check_preconditions_refuses_a_broken_etag() -> None:
    req = webob.Request.blank("/", method="PUT")
    with pytest.raises(ValueError, match="entity-tag"):
        check_preconditions(req, etag='"a"b"')


@pytest.mark.parametrize(
    ("shape", "count"),
    [
        pytest.param(lambda n: '"a"' + "," * n + "X", 100_000, id="100k-commas-then-junk"),
        pytest.param(lambda n: '"a"' + " " * n + "X", 100_000, id="100k-spaces-then-junk"),
        pytest.param(lambda n: '"' * (n + 1), 100_000, id="100k-quotes"),
        pytest.param(lambda n: '"a" ' * n, 30_000, id="30k-tags-without-commas"),
        pytest.param(lambda n: '"a", ,' * n + "W/", 20_000, id="20k-tags-then-bare-w"),
    ],
)
def test_hostile_lists_are_linear(shape: Callable[[int], str], count: int) -> None:
    """Hostile: the list grammar cannot backtrack; each shape costs about 10 times a tenth
    of it (scaling.py), where backtracking would cost 100 times or more."""

    def refuse(size: int) -> Callable[[], None]:
        value = shape(size)

        def work() -> None:
            assert parse_etag_list(value) == [] and not etag_matches(value, '"a"')

        return work

    assert_linear(refuse, count // 10)

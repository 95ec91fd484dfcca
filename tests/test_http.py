"""microweb.http: the shared grammar's rules that no other module's tests reach directly."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from wsgi_call import call

from microweb import App
from microweb.http import (
    bearer_credentials,
    declares_body,
    not_modified_headers,
    replace_headers,
    unsafe_methods,
)
from microweb.middleware.https_redirect import HTTPSRedirect
from microweb.middleware.trusted_host import TrustedHost
from microweb.types import Environ, StartResponse

DECLARED = [
    pytest.param({}, False, id="neither-field"),
    pytest.param({"CONTENT_LENGTH": ""}, False, id="empty-length"),
    pytest.param({"CONTENT_LENGTH": "0"}, False, id="zero-length"),
    pytest.param({"CONTENT_LENGTH": "5"}, True, id="length"),
    pytest.param({"CONTENT_LENGTH": "x"}, True, id="bad-length-still-declared"),
    pytest.param({"HTTP_TRANSFER_ENCODING": "chunked"}, True, id="chunked"),
    pytest.param({"HTTP_TRANSFER_ENCODING": "gzip, Chunked"}, True, id="chunked-last-any-case"),
    pytest.param({"HTTP_TRANSFER_ENCODING": ""}, False, id="empty-coding"),
    pytest.param({"CONTENT_LENGTH": "0", "HTTP_TRANSFER_ENCODING": "chunked"}, True, id="both"),
]


@pytest.mark.parametrize(("environ", "expected"), DECLARED)
def test_declares_body(environ: dict[str, Any], expected: bool) -> None:
    """RFC 9112 §6.3: a request's body is framed by chunked Transfer-Encoding or by
    Content-Length; with neither (rule 7), or a length of 0, there is no body to read."""
    assert declares_body(environ) is expected


REPLACED = [
    pytest.param([("Vary", "Origin")], [("ETag", '"b"')], [("Vary", "Origin"), ("ETag", '"b"')],
                 id="absent-appended"),
    pytest.param([("etag", '"a"'), ("Vary", "Origin"), ("ETAG", '"c"')], [("ETag", '"b"')],
                 [("Vary", "Origin"), ("ETag", '"b"')], id="every-spelling-replaced"),
    pytest.param([("A", "1"), ("B", "2")], [("a", "3"), ("b", "4")], [("a", "3"), ("b", "4")],
                 id="several"),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "new", "expected"), REPLACED)
def test_replace_headers(
    headers: list[tuple[str, str]], new: list[tuple[str, str]], expected: list[tuple[str, str]]
) -> None:
    """RFC 9110 §5.1: field names are case-insensitive, so every spelling of a replaced field
    goes (§5.3: a repeated field is one list; two ETags or Allow-Origins would be wrong)."""
    original = headers
    replace_headers(headers, new)
    assert headers is original and headers == expected


@pytest.mark.parametrize(
    ("methods", "says"),
    [
        pytest.param("POST", "takes a list of methods, like ['POST']", id="one-string"),
        pytest.param(["POST", "get"], "['GET'] are safe methods", id="rfc9110-9.2.1-safe"),
        pytest.param(["OPTIONS", "TRACE"], "['OPTIONS', 'TRACE'] are safe", id="all-four-are-safe"),
    ],
)
def test_unsafe_methods_refuses_what_cannot_change_anything(methods: Any, says: str) -> None:
    with pytest.raises(ValueError, match=r"^Thing\(methods=\.\.\.\)") as error:
        unsafe_methods("Thing(methods=...)", methods)
    assert says in str(error.value)


def test_unsafe_methods_are_upper_cased() -> None:
    assert unsafe_methods("methods", ["post", "Patch", "POST"]) == frozenset({"POST", "PATCH"})
    assert unsafe_methods("methods", ()) == frozenset()


BEARER = [
    pytest.param("Bearer abc", "abc", id="bearer"),
    pytest.param("bearer abc", "abc", id="rfc9110-11.1-scheme-lowercase"),
    pytest.param("BeArEr abc", "abc", id="rfc9110-11.1-scheme-mixed-case"),
    pytest.param(" Bearer abc", "abc", id="rfc9110-5.5-leading-space-trimmed"),
    pytest.param("Bearer abc \t", "abc", id="rfc9110-5.5-trailing-space-trimmed"),
    pytest.param("Bearer   abc", "abc", id="rfc9110-11.4-several-spaces"),
    pytest.param("Bearer a b", "a b", id="two-tokens-left-to-the-caller"),
    pytest.param("Bearer", "", id="rfc6750-3.1-no-token"),
    pytest.param("Bearer   ", "", id="rfc6750-3.1-blank-token"),
    pytest.param("Bearerx abc", None, id="another-scheme-name"),
    pytest.param("Bearer\tabc", None, id="rfc9110-11.4-tab-is-no-separator"),
    pytest.param("Basic dTpw", None, id="basic"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="absent"),
]


@pytest.mark.parametrize(("authorization", "credentials"), BEARER)
def test_bearer_credentials(authorization: str | None, credentials: str | None) -> None:
    """RFC 6750 §2.1 in RFC 9110 §11.4's grammar: the auth-scheme is a case-insensitive
    token followed by 1*SP; the field value is trimmed of whitespace (§5.5)."""
    assert bearer_credentials(authorization) == credentials


KEPT_ON_304 = [("Cache-Control", "no-cache"), ("Content-Location", "/a"), ("Date", "d"),
               ("Expires", "e"), ("Vary", "Accept"), ("Set-Cookie", "a=1")]
DROPPED_ON_304 = [("Content-Type", "text/plain"), ("Content-Length", "2"),
                  ("Content-Encoding", "gzip"), ("Content-Language", "en"),
                  ("Content-Range", "bytes 0-1/2")]
NOT_MODIFIED = [
    pytest.param([("ETag", '"a"'), ("Last-Modified", "d")], [("ETag", '"a"')],
                 id="with-etag-last-modified-dropped"),
    pytest.param([("etag", '"a"'), ("last-modified", "d")], [("etag", '"a"')],
                 id="any-case"),
    pytest.param([("Last-Modified", "d")], [("Last-Modified", "d")],
                 id="without-etag-last-modified-kept"),
]  # fmt: skip


@pytest.mark.parametrize(("validators", "kept"), NOT_MODIFIED)
def test_rfc9110_15_4_5_not_modified_headers(
    validators: list[tuple[str, str]], kept: list[tuple[str, str]]
) -> None:
    """A 304 carries Cache-Control, Content-Location, Date, ETag, Expires and Vary as the
    200 would, no other representation metadata, and Last-Modified only without an ETag."""
    headers = [*DROPPED_ON_304, *validators, *KEPT_ON_304]
    assert not_modified_headers(headers) == [*kept, *KEPT_ON_304]


QUERIES = [
    pytest.param("a=1&b=x", "?a=1&b=x", id="plain"),
    pytest.param("a=%2F", "?a=%2F", id="escape-kept-not-%252F"),
    pytest.param("a=b c", "?a=b%20c", id="literal-space"),
    pytest.param("q=é".encode().decode("latin-1"), "?q=%C3%A9", id="non-ascii-bytes"),
    pytest.param("a=%", "?a=%25", id="stray-percent"),
    pytest.param("a=%zz&b=%4", "?a=%25zz&b=%254", id="percent-starting-no-escape"),
    pytest.param("next=/x?y#f\r\n", "?next=/x?y%23f%0D%0A", id="hash-and-crlf"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize("redirect", ["trailing-slash-308", "https-redirect"])
@pytest.mark.parametrize(("query", "suffix"), QUERIES)
def test_rfc3986_3_4_both_redirects_write_the_query_one_way(
    redirect: str, query: str, suffix: str
) -> None:
    """The query as sent (PEP 3333), made a valid ``Location`` (RFC 9110 §10.2.2) by both
    redirects that keep it: `routing`'s trailing-slash 308 and `HTTPSRedirect`."""
    app = App()
    app.add_route("/dir/", lambda req: "dir", ["GET"])
    if redirect == "https-redirect":
        reply = call(HTTPSRedirect(app), "GET", "/dir/", QUERY_STRING=query)
        assert reply.header("Location") == "https://127.0.0.1/dir/" + suffix
    else:
        reply = call(app, "GET", "/dir", QUERY_STRING=query)
        assert reply.header("Location") == "/dir/" + suffix
    assert reply.status_code == 308


HOSTS = [
    pytest.param("HTTP/1.1", "example.com", 200, id="http11-with-host"),
    pytest.param("HTTP/1.1", None, 400, id="http11-without-host"),
    pytest.param("HTTP/1.1", "", 400, id="http11-empty-host-rfc9110-4.2.1"),
    pytest.param("HTTP/1.0", None, 200, id="http10-without-host"),
    pytest.param("HTTP/1.0", "", 200, id="http10-empty-host"),
    pytest.param("HTTP/2.0", "example.com", 200, id="http2-authority-as-host"),
    pytest.param("HTTP/2.0", None, 400, id="http2-without-authority-rfc9113-8.3.1"),
]


@pytest.mark.parametrize("checker", ["routing", "trusted-host"])
@pytest.mark.parametrize(("protocol", "host", "status"), HOSTS)
def test_rfc9112_3_2_both_host_checks_answer_400_the_same_way(
    checker: str, protocol: str, host: str | None, status: int
) -> None:
    """One rule, `lacks_host`, for the router and `TrustedHost` (whose allow-list
    holds the fallback SERVER_NAME, so only a missing Host can refuse)."""
    app = App()
    app.add_route("/", lambda req: "ok", ["GET"])
    checked = TrustedHost(app, ["example.com", "127.0.0.1"]) if checker == "trusted-host" else app

    def as_sent(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if host is None:
            del environ["HTTP_HOST"]
        return checked(environ, start_response)

    reply = call(as_sent, "GET", "/", SERVER_PROTOCOL=protocol, HTTP_HOST=host or "")
    assert reply.status_code == status

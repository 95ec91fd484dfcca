"""microweb.http: the shared grammar's rules that no other module's tests reach directly."""

from __future__ import annotations

from typing import Any

import pytest

from microweb.http import declares_body

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

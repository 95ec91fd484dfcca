"""microweb.layer: the option check the middleware share (`exact_paths`).

`Middleware` itself runs in every middleware test (tests/test_middleware_*.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from microweb.layer import exact_paths


@pytest.mark.parametrize(
    ("paths", "says"),
    [
        # NOTE: not a set of its characters (or bytes), each "not a path".
        pytest.param("/healthz", "takes a list of paths, like ['/healthz']", id="one-string"),
        pytest.param(b"/healthz", "takes a list of paths, like [b'/healthz']", id="one-bytes"),
        pytest.param(["healthz"], "'healthz' is not a path", id="not-a-path"),
        pytest.param([""], "'' is not a path", id="empty"),
        pytest.param([1], "1 is not a path", id="not-a-string"),
    ],
)
def test_what_is_not_a_list_of_paths_fails_at_startup_naming_the_option(
    paths: Any, says: str
) -> None:
    with pytest.raises(ValueError, match=r"^Thing\(exempt=\.\.\.\)") as error:
        exact_paths("Thing(exempt=...)", paths)
    assert says in str(error.value)


def test_paths_become_a_set() -> None:
    assert exact_paths("exempt", ["/a", "/b", "/a"]) == frozenset({"/a", "/b"})
    assert exact_paths("exempt", iter(["/a"])) == frozenset({"/a"})
    assert exact_paths("exempt", ()) == frozenset()

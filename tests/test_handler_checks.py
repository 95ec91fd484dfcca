"""Handler checks (microweb/handler_checks.py): a handler that cannot take
``handler(req, **params)`` is refused at registration, naming its file:line."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from microweb import App, Router
from microweb.testing import Client


def next_line() -> str:
    """``file:line`` of the line after the caller's: where the next handler starts."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return f"{__file__}:{frame.f_back.f_lineno + 1}"


def test_a_parameter_name_the_template_does_not_give_is_refused() -> None:
    app = App()
    where = next_line()
    def show_note(req: Any, note_id: int) -> Any:
        return {}

    with pytest.raises(TypeError) as info:
        app.get("/notes/{id:int}")(show_note)
    message = str(info.value)
    assert where in message
    assert "show_note" in message and "/notes/{id:int}" in message
    assert "gives 'id'" in message and "requires 'note_id'" in message
    Client(app).get("/notes/1", status=404)  # nothing was registered


def test_a_handler_without_a_request_parameter_is_refused() -> None:
    app = App()
    where = next_line()
    def health() -> str:
        return "ok"

    with pytest.raises(TypeError, match="no parameter for the request") as info:
        app.get("/health")(health)
    assert where in str(info.value) and "health" in str(info.value)


def test_a_template_parameter_named_like_the_request_is_refused() -> None:
    app = App()
    where = next_line()
    def show(req: Any, **params: Any) -> Any:
        return params

    with pytest.raises(TypeError, match="second value") as info:
        app.get("/r/{req}")(show)
    assert where in str(info.value)


def test_app_include_checks_the_routers_handlers() -> None:
    router = Router(prefix="/api", name="api")
    where = next_line()
    @router.get("/users/{id:int}")
    def user(req: Any, user_id: int) -> Any:
        return {}

    with pytest.raises(TypeError) as info:
        App().include(router)
    message = str(info.value)
    assert where in message and "/api/users/{id:int}" in message and "user_id" in message


def wrapped(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator that supplies an argument itself (as auth decorators may)."""

    @functools.wraps(handler)
    def wrapper(req: Any, *args: Any, **kwargs: Any) -> Any:
        return handler(req, *args, user="ada", **kwargs)

    return wrapper


class Notes:
    def __init__(self) -> None:
        self.prefix = "note"

    def show(self, req: Any, id: int) -> str:
        return f"{self.prefix} {id}"

    def __call__(self, req: Any, **params: Any) -> dict[str, Any]:
        return params


def store_lookup(store: dict[int, str], req: Any, id: int) -> str:
    return store[id]


def test_callables_that_are_not_plain_functions_keep_working() -> None:
    app = App()

    @app.get("/wrapped/{id:int}")
    @wrapped
    def who(req: Any, id: int, user: str) -> str:
        return f"{user} {id}"

    app.get("/method/{id:int}")(Notes().show)
    app.get("/object/{id:int}")(Notes())
    app.get("/partial/{id:int}")(functools.partial(store_lookup, {3: "three"}))
    app.get("/default/{id:int}")(functools.partial(store_lookup, {0: "zero"}, id=0))
    app.get("/keyword/{id:int}")(lambda req, *, id: str(id))
    app.get("/builtin")(repr)  # no readable signature: accepted, nothing is certain
    client = Client(app)
    assert client.get("/wrapped/1").text == "ada 1"
    assert client.get("/method/2").text == "note 2"
    assert client.get("/object/3").json == {"id": 3}
    assert client.get("/partial/3").text == "three"
    assert client.get("/default/0").text == "zero"
    assert client.get("/keyword/4").text == "4"


def test_a_named_router_takes_a_partial() -> None:
    """A partial has no ``__name__``: its route is named after its path."""
    api = Router(prefix="/api", name="api")
    api.get("/notes/{id:int}")(functools.partial(store_lookup, {1: "one"}))
    app = App()
    app.include(api)
    assert Client(app).get(app.url_for("api./notes/{id:int}", id=1)).text == "one"


def test_a_wrapped_handler_is_named_at_its_own_line() -> None:
    """A wrapper whose own signature refuses the call: the message points at the user's code."""

    def strict(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(req: Any) -> Any:
            return handler(req)

        return wrapper

    app = App()
    where = next_line()
    @strict
    def item(req: Any, id: int) -> Any:
        return id

    with pytest.raises(TypeError, match="gives 'id'") as info:
        app.get("/items/{id:int}")(item)
    assert where in str(info.value)


def test_a_partial_that_leaves_no_place_for_the_request_is_refused() -> None:
    """``store=`` by keyword makes every later parameter keyword-only: req has no place."""
    handler = functools.partial(store_lookup, store={})
    with pytest.raises(TypeError, match="no parameter for the request") as info:
        App().get("/items/{id:int}")(handler)
    assert f"{__file__}:{store_lookup.__code__.co_firstlineno}" in str(info.value)
    assert "handler partial(*, store={}, req, id)" in str(info.value)


class Strict:
    def __call__(self, req: Any) -> str:
        return "ok"


def test_a_callable_object_is_named_at_its_call_method() -> None:
    with pytest.raises(TypeError, match="gives 'id'") as info:
        App().get("/items/{id:int}")(Strict())
    assert f"{__file__}:{Strict.__call__.__code__.co_firstlineno}" in str(info.value)


def test_an_uncallable_handler_is_refused() -> None:
    with pytest.raises(TypeError, match="not callable"):
        App().add_route("/a", "not a function", ["GET"])  # type: ignore[arg-type]

"""Route templates (microweb/route_templates.py): mistakes are raised at
registration, each naming the handler's file:line and what to write instead."""

from __future__ import annotations

from typing import Any

import pytest

from microweb import App
from microweb.testing import Client


def show(req: Any, **params: Any) -> Any:
    return params


WHERE = f"{__file__}:{show.__code__.co_firstlineno}"


def refusal(template: str, app: App | None = None) -> str:
    with pytest.raises(ValueError) as info:
        (app or App()).get(template)(show)
    message = str(info.value)
    assert WHERE in message and repr(template) in message
    return message


@pytest.mark.parametrize(
    ("flask", "ours"),
    [
        ("/notes/<int:id>", "/notes/{id:int}"),
        ("/notes/<id>", "/notes/{id}"),
        ("/notes/<string:id>", "/notes/{id}"),
        ("/files/<path:rest>", "/files/{rest:path}"),
        ("/a/<any(x, y):kind>/<uuid:u>", "/a/{kind:any}/{u:uuid}"),
    ],
)
def test_flask_style_segments_are_refused_with_the_braces_to_write(flask: str, ours: str) -> None:
    assert f"microweb writes {ours!r}" in refusal(flask)


def test_an_unknown_converter_lists_the_known_ones() -> None:
    app = App()

    class Slug:
        regex = "[a-z-]+"

        def to_python(self, value: str) -> str:
            return value

        def to_url(self, value: str) -> str:
            return value

    app.add_converter("slug", Slug)
    message = refusal("/notes/{id:float}", app)
    assert "unknown converter 'float'" in message
    assert "the known ones are int, path, slug, str, uuid" in message


@pytest.mark.parametrize(
    "template", ["no-slash", "/a/b{x}", "/a/{x}/{x}", "/a/{p:path}/b"]
)
def test_every_template_error_names_the_handler(template: str) -> None:
    refusal(template)


def test_angle_brackets_that_are_not_a_parameter_stay_literal() -> None:
    """Only ``<name>``/``<kind:name>`` is Flask's syntax; a decoded ``%3C`` path may hold '<'."""
    app = App()
    app.get("/a<b", name="a")(show)
    app.get("/<>", name="empty")(show)
    assert Client(app).get("/a%3Cb").json == {}

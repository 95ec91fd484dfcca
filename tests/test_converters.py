"""Converters (microweb/converters.py): the three documented parts suffice, and
a converter the router could not use is refused at ``add_converter``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from microweb import App, Router
from microweb.testing import Client


class Bare:
    """Only what DESIGN.md documents: regex, to_python, to_url (no `Converter` base)."""

    regex = "[0-9]+-[0-9]+"

    def to_python(self, value: str) -> tuple[int, int]:
        low, high = value.split("-")
        if int(low) > int(high):
            raise ValueError(value)
        return int(low), int(high)

    def to_url(self, value: tuple[int, int]) -> str:
        return f"{value[0]}-{value[1]}"


def test_a_converter_with_only_the_three_parts_matches_and_builds() -> None:
    app = App()
    app.add_converter("span", Bare)

    @app.get("/pages/{pages:span}/text", name="pages")
    def pages(req: Any, pages: tuple[int, int]) -> dict[str, Any]:
        return {"pages": list(pages)}

    client = Client(app)
    assert client.get("/pages/2-5/text").json == {"pages": [2, 5]}
    client.get("/pages/5-2/text", status=404)
    client.get("/pages/2/5/text", status=404)  # one segment only: spans_segments defaults off
    assert app.url_for("pages", pages=(1, 3)) == "/pages/1-3/text"


def location(cls: type) -> str:
    return f"{__file__}:{inspect.getsourcelines(cls)[1]}"


class NoToUrl:
    regex = "[a-z]+"

    def to_python(self, value: str) -> str:
        return value


class NoRegex:
    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class BadRegex(Bare):
    regex = "[a-z"


@pytest.mark.parametrize(
    ("converter", "error", "problem"),
    [
        (NoToUrl, TypeError, "has no method 'to_url'"),
        (NoRegex, TypeError, "needs a str 'regex'"),
        (BadRegex, ValueError, "regex '[a-z'"),
    ],
)
@pytest.mark.parametrize("registry", [App, Router])
def test_an_unusable_converter_is_refused_naming_its_file_line(
    converter: type, error: type[Exception], problem: str, registry: type[App | Router]
) -> None:
    with pytest.raises(error) as info:
        registry().add_converter("kind", converter)
    message = str(info.value)
    assert problem in message and converter.__qualname__ in message
    assert location(converter) in message


def test_add_converter_takes_a_class_and_an_identifier() -> None:
    with pytest.raises(TypeError, match="the converter class"):
        App().add_converter("span", Bare())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identifier"):
        App().add_converter("my-span", Bare)

"""Path converters: how a `{name:kind}` segment matches and what it becomes.

A converter is a small object with three parts (the names follow Werkzeug
and Flask, so they are familiar):

- `regex`: what the segment must look like (matched against the whole
  segment, or for `path` against the rest of the path);
- `to_python(text)`: the value the handler receives; raising `ValueError`
  means "this route does not match" (the router tries the next candidate
  and, failing all, answers 404, never 500);
- `to_url(value)`: the segment `url_for` writes back.

Registries of converters live on the `App` or `Router` (a copy of
`BUILTIN_CONVERTERS`), never in a module global that every app shares.
"""

import uuid
from typing import Any, ClassVar


class Converter:
    """The default `{name}` converter: one non-empty segment, as text."""

    regex: ClassVar[str] = "[^/]+"
    #: True only for a converter that can span several segments (`path`).
    spans_segments: ClassVar[bool] = False

    def to_python(self, value: str) -> Any:
        return value

    def to_url(self, value: Any) -> str:
        return str(value)


class IntConverter(Converter):
    """`{id:int}`: a non-negative integer in canonical form.

    ASCII digits only (``int()`` would take a superscript "²" or Arabic-Indic
    digits) and no leading zeros, so each number has exactly one URL:
    ``/notes/07`` is not a second name for ``/notes/7`` (404).
    """

    regex = "0|[1-9][0-9]*"
    #: PERF: to_python validates the text itself, so the router skips `regex`.
    checks_text = True

    def to_python(self, value: str) -> int:
        if not (value.isascii() and value.isdigit()) or (value[0] == "0" and value != "0"):
            raise ValueError(value)
        return int(value)

    def to_url(self, value: Any) -> str:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"int converter needs a non-negative int, got {value!r}")
        return str(value)


class UUIDConverter(Converter):
    """`{id:uuid}`: the canonical 8-4-4-4-12 hex form, any case."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)


class PathConverter(Converter):
    """`{rest:path}`: one or more segments, slashes included."""

    regex = ".+"
    spans_segments = True


BUILTIN_CONVERTERS: dict[str, type[Converter]] = {
    "str": Converter,
    "int": IntConverter,
    "uuid": UUIDConverter,
    "path": PathConverter,
}

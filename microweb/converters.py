"""Path converters: how a `{name:kind}` segment matches and what it becomes.

A converter is a small object with three parts (the names follow Werkzeug
and Flask, so they are familiar):

- `regex`: what the segment must look like (matched against the whole
  segment, or for `path` against the rest of the path);
- `to_python(text)`: the value the handler receives; raising `ValueError`
  means "this route does not match" (the router tries the next candidate
  and, failing all, answers 404, never 500);
- `to_url(value)`: the segment `url_for` writes back.

Only those three are required: subclassing `Converter` is optional, and
the optional parts the router reads (`spans_segments`, `checks_text`) are
read with their defaults. `check_converter` refuses, at ``add_converter``,
a converter the router could not use.

Registries of converters live on the `App` or `Router` (a copy of
`BUILTIN_CONVERTERS`), never in a module global that every app shares.
"""

import inspect
import re
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import uuid


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

    def to_python(self, value: str) -> "uuid.UUID":
        import uuid  # PERF: only apps with {id:uuid} routes load it (bench/rss.py: 0.13 MiB)

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


_KIND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_converter(kind: str, converter: Any) -> None:
    """Raise unless ``{name:kind}`` can use `converter`: a class with the three parts."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(f"converter name {kind!r} must be an identifier, like 'slug'")
    if not isinstance(converter, type):
        raise TypeError(
            f"add_converter({kind!r}, ...) takes the converter class, not {converter!r}"
        )
    where = _location(converter)
    for part in ("to_python", "to_url"):
        if not callable(getattr(converter, part, None)):
            raise TypeError(f"converter {converter.__qualname__} ({where}) has no method {part!r}")
    regex = getattr(converter, "regex", None)
    if not isinstance(regex, str):
        raise TypeError(f"converter {converter.__qualname__} ({where}) needs a str 'regex'")
    try:
        re.compile(regex)
    except re.error as error:
        raise ValueError(
            f"converter {converter.__qualname__} ({where}): regex {regex!r}: {error}"
        ) from None


def _location(cls: type) -> str:
    """``file:line`` of a class, for error messages (its module when unknown)."""
    try:
        return f"{inspect.getsourcefile(cls)}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return cls.__module__

"""Route templates: ``/users/{id:int}`` parsed once, at registration, and built back.

A *template* is the path a route is registered with. `parse_template` splits
it at ``/`` into *segments*, each either a literal string or a `Param`, a
``{name:kind}`` segment with the converter instance for its kind::

    "/users/{id:int}/posts/{slug}"
    → ("users", Param("id", "int", IntConverter()), "posts", Param("slug", "str", Converter()))

A `Route` holds those segments with its handler and methods. `routing.py`
inserts them into its segment tree to *match* a path; `Route.build` walks
them the other way to *build* a path from values, for ``url_for``.

Mistakes in a template are raised here, at registration, never at request
time, each naming the handler's ``file:line``: a path without a leading
``/``, Flask's ``<int:id>`` (with the ``{id:int}`` to write instead), a
``{`` inside a segment, an unknown converter (with the known ones), a
parameter named twice, ``{rest:path}`` anywhere but last. Whether the
handler can take the template's parameters is `handler_checks.py`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote

from .converters import Converter
from .http import PATH_SAFE

Handler = Callable[..., Any]

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_][A-Za-z0-9_]*))?\}$")
# Flask's ``<name>``, ``<int:name>``, ``<any(a, b):name>``: refused with the ``{...}`` spelling.
_FLASK_PARAM = re.compile(r"<(?:([A-Za-z_][A-Za-z0-9_]*)(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


# PERF: a NamedTuple and a plain class, not dataclasses: with `uploads.FormLimits`
# loaded with the first form, a worker that routes needs no `dataclasses` (module and
# generated methods): hello's peak RSS 23.9 -> 23.6 MiB (bench/rss.py).
class Param(NamedTuple):
    """A ``{name:kind}`` segment of a template."""

    name: str
    kind: str
    converter: Converter
    #: The converter's `spans_segments` (`path`): False when it has none.
    spans: bool


class Route:
    """A compiled route: its template split into literal and `Param` segments."""

    __slots__ = ("handler", "methods", "name", "param_names", "segments", "template", "where")

    def __init__(
        self,
        template: str,
        handler: Handler,
        methods: frozenset[str],
        name: str,
        segments: tuple[str | Param, ...],
        where: str = "",
    ) -> None:
        self.template = template
        self.handler = handler
        self.methods = methods
        self.name = name
        self.segments = segments
        self.where = where
        self.param_names = tuple(s.name for s in segments if isinstance(s, Param))

    def __repr__(self) -> str:
        return f"Route({self.template!r}, methods={sorted(self.methods)}, name={self.name!r})"

    def build(self, params: dict[str, Any]) -> str:
        """The path for these parameter values (the inverse of matching)."""
        parts = []
        for segment in self.segments:
            if isinstance(segment, Param):
                if segment.name not in params:
                    raise KeyError(f"route {self.name!r} needs a value for {segment.name!r}")
                text = segment.converter.to_url(params[segment.name])
                safe = "/" if segment.spans else ""
                parts.append(quote(text, safe=safe))
            else:
                parts.append(quote(segment, safe=PATH_SAFE))
        return "/" + "/".join(parts)


def parse_template(
    template: str, converters: dict[str, type[Converter]], where: str = ""
) -> list[str | Param]:
    """Split ``/users/{id:int}`` into ``["users", Param("id", "int", ...)]``.

    `where` (the handler's ``file:line``) goes into every error message.
    """

    def refuse(problem: str) -> ValueError:
        return ValueError(f"{template!r} ({where or 'route'}): {problem}")

    if not template.startswith("/"):
        raise refuse("a route path must start with '/'")
    if _FLASK_PARAM.search(template):
        # NOTE: '<' and '>' may not appear in a URI (RFC 3986 §2), so a
        # Flask-style '<int:id>' could only ever be a literal that never matches.
        braces = _FLASK_PARAM.sub(_as_braces, template)
        raise refuse(f"'<...>' is Flask's syntax; microweb writes {braces!r}")
    segments: list[str | Param] = []
    names: set[str] = set()
    raw = template[1:].split("/")
    for index, text in enumerate(raw):
        match = _PARAM.match(text)
        if match is None:
            if "{" in text or "}" in text:
                raise refuse("a parameter must be a whole segment, like '/{name}'")
            segments.append(text)
            continue
        name, kind = match.group(1), match.group(2) or "str"
        if kind not in converters:
            known = ", ".join(sorted(converters))
            raise refuse(
                f"unknown converter {kind!r}; the known ones are {known} "
                "(add_converter registers more)"
            )
        if name in names:
            raise refuse(f"parameter {name!r} appears twice")
        names.add(name)
        converter = converters[kind]()
        # NOTE: a converter needs only regex, to_python and to_url (DESIGN.md);
        # its optional parts are read with their defaults, this one here once.
        spans = bool(getattr(converter, "spans_segments", False))
        if spans and index != len(raw) - 1:
            raise refuse(f"a '{{{name}:{kind}}}' must be the last segment")
        segments.append(Param(name, kind, converter, spans))
    return segments


def _as_braces(match: re.Match[str]) -> str:
    """``<int:id>`` → ``{id:int}``; ``<id>`` and ``<string:id>`` → ``{id}``."""
    kind, name = match.group(1), match.group(2)
    return f"{{{name}}}" if kind in (None, "string") else f"{{{name}:{kind}}}"

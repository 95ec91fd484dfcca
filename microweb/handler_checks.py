"""Handler checks: at registration, a handler must fit the call dispatch makes.

`App.dispatch` calls every handler the same way, ``handler(req, **params)``:
the request as the one positional argument, then one keyword argument per
``{name}`` of the route's template. A handler that cannot take that call
would fail on every request with a 500. `check_handler` tries the very same
call on the handler's signature (``inspect.Signature.bind``) when the route
is registered, so the mistake is a `TypeError` at ``@app.get(...)`` naming
the handler, the template, the names that do not fit, and the handler's
``file:line`` (`handler_location`).

Only what is certainly wrong is refused:

- a callable whose signature cannot be read (some builtins) is accepted;
- a decorated handler is judged by the signature dispatch calls, the
  wrapper's own (``follow_wrapped=False``): a decorator may supply
  arguments itself, so the function it wraps proves nothing;
- ``functools.partial`` objects, bound methods and callable objects are
  judged by what calling them takes, which ``inspect.signature`` knows.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import Any

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def handler_location(handler: Any) -> str:
    """``file:line`` of the code a handler runs, through wrappers and partials."""
    target = handler
    for _ in range(100):  # NOTE: bounded, in case __wrapped__ chains loop.
        if isinstance(target, functools.partial):
            target = target.func
        elif getattr(target, "__wrapped__", None) is not None:
            target = target.__wrapped__
        else:
            break
    code = getattr(target, "__code__", None)  # functions and bound methods
    if code is None and callable(target):  # a callable object: the code of its __call__
        code = getattr(type(target).__call__, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else repr(handler)


def check_handler(handler: Any, template: str, names: Iterable[str], where: str) -> None:
    """Raise `TypeError` unless ``handler(req, **{name: ... for name in names})`` binds."""
    if not callable(handler):
        raise TypeError(f"{template} ({where}): the handler {handler!r} is not callable")
    try:
        signature = inspect.signature(handler, follow_wrapped=False)
    except (TypeError, ValueError):
        return  # NOTE: no readable signature (a builtin): nothing is certain.
    names = tuple(names)
    try:
        signature.bind(object(), **dict.fromkeys(names))
    except TypeError as error:
        problems = _problems(signature, names) or [str(error)]
        title = getattr(handler, "__qualname__", None) or type(handler).__name__
        raise TypeError(
            f"{template} ({where}): handler {title}{_bare(signature)} cannot be called as "
            f"handler(req{''.join(f', {name}=...' for name in names)}): "
            + "; ".join(problems)
        ) from None


def _problems(signature: inspect.Signature, names: tuple[str, ...]) -> list[str]:
    """What does not fit, in the user's terms: the request, missing names, extra names."""
    parameters = list(signature.parameters.values())
    kinds = {p.kind for p in parameters}
    request = next((p for p in parameters if p.kind in POSITIONAL), None)
    rest = [p for p in parameters if p is not request]
    problems = []
    if request is None and inspect.Parameter.VAR_POSITIONAL not in kinds:
        problems.append("it has no parameter for the request: make the first one 'req'")
    if request is not None and request.name in names:
        problems.append(
            f"its first parameter {request.name!r} receives the request, so "
            f"{{{request.name}}} in the template would be a second value for it"
        )
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        accepted = {p.name for p in rest if p.kind in _BY_KEYWORD}
        missing = [n for n in names if n not in accepted and (request is None or n != request.name)]
        if missing:
            problems.append(
                f"the template gives {_listed(missing)}, which it does not take "
                "(name its parameters after the template's, or take **params)"
            )
    required = [
        p.name
        for p in rest
        if p.default is inspect.Parameter.empty and p.kind not in _VARIADIC and p.name not in names
    ]
    if required:
        problems.append(
            f"it requires {_listed(required)}, which the template does not give "
            "(add a {name} segment for each, or give them defaults)"
        )
    return problems


def _bare(signature: inspect.Signature) -> inspect.Signature:
    """The signature without annotations: ``(req, note_id)``, as the user wrote it."""
    empty = inspect.Parameter.empty
    return signature.replace(
        parameters=[p.replace(annotation=empty) for p in signature.parameters.values()],
        return_annotation=empty,
    )


def _listed(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)

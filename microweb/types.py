"""WSGI type aliases (PEP 3333), in one place so every module agrees on them."""

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

Environ: TypeAlias = dict[str, Any]
Headers: TypeAlias = list[tuple[str, str]]
StartResponse: TypeAlias = Callable[..., Callable[[bytes], object]]
WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]

"""WSGI type aliases (PEP 3333), in one place so every module agrees on them."""

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeAlias

Environ: TypeAlias = dict[str, Any]
Headers: TypeAlias = list[tuple[str, str]]
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType]
StartResponse: TypeAlias = Callable[..., Callable[[bytes], object]]
WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]

"""`Session`: the dict a handler sees as ``req.session``, and its stored form.

`Session` is a real ``dict`` subclass with three additions:

- **It is loaded in `SessionMiddleware.before`**, when the request
  carries the session cookie (a request without one costs nothing). NOTE:
  not lazily on first use, although that would spare a request that never
  touches its session an HMAC or a store read: a dict subclass cannot hide
  that it is empty (``json.dumps`` reads the C-level size of a dict
  subclass directly and would write ``{}`` for a session not loaded yet).
- **It records what happened to it**: ``accessed`` (any read or write: the
  response then depends on the ``Cookie`` header, so it gets ``Vary:
  Cookie``) and ``modified`` (a top-level change: ``session[k] = v``,
  ``del``, ``pop``, ``update``, ``clear``...). NOTE: a change *inside* a
  value (``session["cart"].append(3)``) cannot be seen; set
  ``session.modified = True`` after one.
- ``rotate()`` (call it on login and on any change of privilege) and
  ``invalidate()`` (call it on logout); what they do depends on where the
  data lives (`CookieSessions`, `ServerSessions`).

The stored form (`encode_record`, `decode_record`) is the same for both
kinds: the UTF-8 JSON ``{"iat": <issued at>, "seen": <last saved>, "data": {...}}``,
inside a signed cookie (`CookieSessions`) or in a store row (`ServerSessions`).

When a session is loaded, saved and sent is the middleware's business:
`microweb.sessions.session`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any


def _tracked(method: Callable[..., Any], changes: bool = False) -> Any:
    """dict's `method`, after recording a read (`Session._read`) or, with `changes`, a change."""

    @wraps(method)
    def tracked(self: Session, *args: Any, **kwargs: Any) -> Any:
        if changes:
            self._write()
        else:
            self._read()
        return method(self, *args, **kwargs)

    return tracked


class Session(dict[str, Any]):
    """``req.session``: a dict that records use and changes (see the module docs)."""

    def __init__(self, discard: Callable[[Session], None], has_cookie: bool) -> None:
        super().__init__()
        self._discard = discard
        #: Any read or write happened (the response then varies on ``Cookie``).
        self.accessed = False
        #: A top-level change happened; set it yourself after changing a nested value.
        self.modified = False
        #: When the session was created (or last rotated), and last saved; None if new.
        self.issued_at: float | None = None
        self.last_seen: float | None = None
        #: The request sent a session cookie (valid or not).
        self.has_cookie = has_cookie
        #: The next save starts a new lifetime (set by `rotate` and `invalidate`).
        self.renew = False
        #: The store could not be read (``fail_open=True``): never saved, cookie untouched.
        self.detached = False

    def _read(self) -> None:
        self.accessed = True

    def _write(self) -> None:
        self._read()
        self.modified = True

    @property
    def valid(self) -> bool:
        """The request's cookie named a live session (false for a new or rejected one)."""
        return self.issued_at is not None

    def rotate(self) -> None:
        """Start a new session with the same data: call it on login (see the middleware)."""
        self._read()
        self._discard(self)
        self.renew = self.modified = True

    def invalidate(self) -> None:
        """Drop the data and the cookie: call it on logout (see the middleware)."""
        self._read()
        self._discard(self)
        dict.clear(self)
        self.renew = self.modified = True

    # -- dict, with every read going through _read and every change through _write.
    __getitem__ = _tracked(dict.__getitem__)
    get = _tracked(dict.get)
    __contains__ = _tracked(dict.__contains__)
    __iter__ = _tracked(dict.__iter__)
    __reversed__ = _tracked(dict.__reversed__)
    __len__ = _tracked(dict.__len__)
    keys = _tracked(dict.keys)
    values = _tracked(dict.values)
    items = _tracked(dict.items)
    __eq__ = _tracked(dict.__eq__)
    __ne__ = _tracked(dict.__ne__)
    __or__ = _tracked(dict.__or__)
    __ror__ = _tracked(dict.__ror__)
    __setitem__ = _tracked(dict.__setitem__, changes=True)
    __delitem__ = _tracked(dict.__delitem__, changes=True)
    __ior__ = _tracked(dict.__ior__, changes=True)
    pop = _tracked(dict.pop, changes=True)
    popitem = _tracked(dict.popitem, changes=True)
    setdefault = _tracked(dict.setdefault, changes=True)
    update = _tracked(dict.update, changes=True)
    clear = _tracked(dict.clear, changes=True)

    def copy(self) -> dict[str, Any]:
        self._read()
        return dict(super().items())

    def __repr__(self) -> str:
        self._read()
        return f"Session({super().__repr__()})"


def encode_record(session: Session) -> bytes:
    """The stored form of a session: ``{"iat": ..., "seen": ..., "data": {...}}`` as JSON.

    SECURITY: JSON, never pickle: unpickling runs code, so a leaked signing
    key (or a writable store) would become remote code execution.
    """
    record = {
        "iat": int(session.issued_at or 0),
        "seen": int(session.last_seen or 0),
        "data": dict.copy(session),
    }
    try:
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"a session holds JSON values only (dict, list, str, int, float, bool, None): {exc}"
        ) from exc
    return text.encode("utf-8")


Record = tuple[dict[str, Any], int, int]  # (data, issued_at, last_seen)


def decode_record(raw: bytes) -> Record | None:
    """``(data, issued_at, last_seen)`` from `encode_record`'s bytes; None for anything else."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON (ValueError subclasses)
        return None
    if not isinstance(record, dict):
        return None
    data, issued, seen = record.get("data"), record.get("iat"), record.get("seen")
    if not isinstance(data, dict) or type(issued) is not int or type(seen) is not int:
        return None
    return data, issued, seen


__all__ = ["Record", "Session", "decode_record", "encode_record"]

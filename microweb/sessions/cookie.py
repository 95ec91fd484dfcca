"""`CookieSessions`: the whole session in a signed cookie.

The cookie's value is ``<payload>.<signature>``:

- ``payload``: base64url (RFC 4648 §5, no padding) of the UTF-8 JSON
  ``{"iat": <issued at>, "seen": <last saved>, "data": {...}}``;
- ``signature``: base64url of HMAC-SHA256 (RFC 2104) over
  ``microweb.session <cookie name>=<payload>``, with the first secret key.

The attacks, and what stops them:

- **Tampering.** The client holds the data, so it can change any byte of it
  (``"user": "alice"`` to ``"admin"``). Without the key it cannot compute a
  matching signature, and any cookie whose signature does not verify is an
  empty session: no error page, no 500, no hint of which byte was wrong.
  The comparison is constant-time (`hmac.compare_digest`), so response
  timing does not reveal how many leading bytes of a guess were right. The
  signature covers the cookie *name* too: a value signed for one cookie
  cannot be replayed under another name.
- **Code execution.** The payload is JSON, never pickle (Bottle's signed
  cookies unpickle once the HMAC passes: a leaked key is then remote code
  execution). The JSON is parsed only *after* the signature verified.
- **Replay of an old cookie.** The data is the client's to keep: a copy
  taken before logout still verifies. ``max_age`` (absolute) and
  ``idle_timeout`` are *inside* the signed payload, so the client cannot
  extend them, but until they run out the copy works: `Session.invalidate`
  only deletes the browser's copy. When logout must revoke everywhere (a
  stolen laptop, "log out other devices"), use `ServerSessions`.
- **Key compromise and rotation.** ``secret_keys=[new, old]``: cookies are
  signed with the first key and accepted with any, so a deploy that adds a
  key logs nobody out; a cookie signed with an old key is re-signed with
  the new one the next time it is sent. Drop the old key once ``max_age``
  has passed. Keys shorter than 32 bytes (256 bits, SHA-256's output: a
  shorter key is the easier thing to guess) are refused at startup; make one with
  ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
- **Confidentiality.** Signed is not encrypted: anyone holding the cookie
  can read the payload. Keep secrets out of the session (store an id).
- **Size.** A browser silently drops a cookie over 4 KB (RFC 6265bis §5.6):
  the user would just be logged out. `SessionTooLarge` is raised instead.

The cookie attributes and the other attacks (theft by script, CSRF, cookie
tossing) are the same for both kinds: see `microweb.sessions`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Sequence

from ..types import WSGIApp
from .session import MAX_COOKIE_SIZE, SessionMiddleware
from .session_data import Session, decode_record, encode_record

#: The shortest secret key accepted, in bytes (``str`` keys count as UTF-8).
MIN_KEY_BYTES = 32


class CookieSessions(SessionMiddleware):
    """Sessions kept in an HMAC-signed cookie (see the module docs)."""

    def __init__(
        self,
        app: WSGIApp,
        secret_keys: Sequence[str | bytes],
        cookie_name: str = "session",
        max_age: float | None = None,
        idle_timeout: float | None = None,
        secure: bool = True,
        samesite: str = "Lax",
        host_prefix: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            app,
            cookie_name=cookie_name,
            max_age=max_age,
            idle_timeout=idle_timeout,
            secure=secure,
            samesite=samesite,
            host_prefix=host_prefix,
            clock=clock,
        )
        if isinstance(secret_keys, str | bytes):
            raise TypeError("secret_keys is a list of keys, like [key], not one key")
        keys = [key.encode("utf-8") if isinstance(key, str) else bytes(key) for key in secret_keys]
        if not keys:
            raise ValueError("secret_keys needs at least one key")
        for index, key in enumerate(keys):
            if len(key) < MIN_KEY_BYTES:
                # SECURITY: the message names the key's position, never the key.
                raise ValueError(
                    f"secret_keys[{index}] is {len(key)} bytes; a signing key needs at least "
                    f"{MIN_KEY_BYTES}: make one with secrets.token_urlsafe(32)"
                )
        self.secret_keys = keys
        self._context = f"microweb.session {self.cookie_name}=".encode("ascii")

    def sign(self, payload: str, key: bytes) -> str:
        """The signature of `payload` with `key`, base64url without padding."""
        # PERF: hmac.digest is the one-shot C path (about 3x faster than hmac.new).
        mac = hmac.digest(key, self._context + payload.encode("ascii"), "sha256")
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def load(self, session: Session, value: str, now: float) -> None:
        # SECURITY: reject cheaply what cannot be ours before computing any HMAC
        # (the size cap also bounds the work a huge forged cookie can cause).
        if len(value) > MAX_COOKIE_SIZE or not value.isascii():
            return
        payload, dot, signature = value.rpartition(".")
        if not dot:
            return
        # SECURITY: the signature is compared as text, not decoded: base64 has
        # several spellings of the same bytes (the unused low bits of the last
        # character), and only the one we produce may verify.
        given = signature.encode("ascii")
        if not any(hmac.compare_digest(self.sign(payload, key).encode(), given)
                   for key in self.secret_keys):  # fmt: skip
            return  # tampered, truncated, or signed with a key we no longer hold
        try:
            raw = base64.b64decode(payload + "=" * (-len(payload) % 4), b"-_", validate=True)
        except (binascii.Error, ValueError):
            return
        self.adopt(session, decode_record(raw), now)

    def save(self, session: Session, now: float, ttl: int | None) -> str:
        payload = base64.urlsafe_b64encode(encode_record(session)).rstrip(b"=").decode("ascii")
        # Always the first key: this is where an old-key cookie gets re-signed.
        return f"{payload}.{self.sign(payload, self.secret_keys[0])}"


__all__ = ["CookieSessions"]

"""JWT bearer authentication: `JWTAuth`, on PyJWT (RFC 7519, RFC 6750, RFC 8725).

``auth = JWTAuth(key, issuer=..., audience=...)``; ``auth.encode(claims)``
mints a token; ``@auth.required(scopes=[...])`` on a handler verifies the
``Authorization: Bearer <token>`` header and puts the claims on
``req.claims``. PyJWT checks the signature and the claims; this module
decides which keys and algorithms it may use, and what the client is told.
The defences, with the rule each follows:

- **An algorithm allow-list fixed at construction** (RFC 8725 §3.1): the
  token header never picks one outside it (401); ``none`` is refused
  (§2.1). HMAC and public-key algorithms cannot share one `JWTAuth`, and an
  HMAC key that looks like a PEM/SSH key is refused (PyJWT refuses it too):
  together they close HS/RS key confusion, an HS256 token signed with the
  server's *public* key.
- **Keys are checked once, at startup** (§3.5): HMAC keys shorter than the
  hash (32 bytes for HS256, RFC 7518 §3.2) and RSA keys under 2048 bits are
  a `ValueError`. A private key is split into the half that signs and the
  half that verifies.
- **Key rotation by ``kid``**: ``keys={"2024": old, "2025": new}``. The
  ``kid`` only selects from that dict (§3.10: header values are attacker's
  input, never a path or a query); an unknown one is a 401; a token without
  one is verified with `key`.
- **Claims** (RFC 7519 §4.1): ``exp`` is required by default (§4.1.4);
  ``iss`` and ``aud`` are compared exactly when configured (§3.8, §3.9: a
  token for another service, or from an issuer whose name merely starts
  like ours, is refused); ``sub`` and ``jti`` must be strings; a ``crit``
  header naming an unknown extension is refused (RFC 7515 §4.1.11). PyJWT
  reads the wall clock, so ``exp``/``nbf``/``iat`` are checked here against
  the injectable `clock`, by PyJWT's rules, and must be finite numbers
  (``NaN`` compares false with everything: it would never expire).
- **Revocation by ``jti``** with a store: ``auth.revoke(jti, expires_at)``
  keeps the id until the token would have expired anyway. With a store,
  ``jti`` is a required claim (a token without one could not be revoked).
  When the store cannot be read (`StoreError`), the check fails closed by
  default: the error reaches the app, which answers 503 with
  ``Retry-After`` (`microweb.errors`), so a revoked token is never let in
  by an outage. ``fail_open=True`` accepts the token instead (signature
  and times verified, only revocation unknown) and logs a warning. A
  failing ``revoke()`` raises `StoreError` too: a 503 from the handler.
- **The ``Authorization`` header only** (RFC 6750 §2.1), never the query
  string (§2.3: URLs are logged, and leak through ``Referer``). A token over
  `MAX_TOKEN_LENGTH` is refused before it is parsed.

What the client is told (RFC 6750 §3, §3.1), never a 500 for bad input:

- no ``Authorization``, or another scheme (``Basic``): the client did not
  try bearer auth, so 401 with a bare ``Bearer realm="api"``, no error code;
- ``Bearer`` with no token, or two (``Bearer a b``, ``Bearer a, Bearer b``):
  a malformed request, 400 ``error="invalid_request"`` (§3.1);
- a token that is malformed (characters outside b64token, bad base64, two
  segments) or fails verification (PyJWT's errors, and the ``ValueError``/
  ``TypeError`` of malformed input): 401 ``error="invalid_token"``, with an
  ``error_description`` of ours (PyJWT's messages can quote attacker-chosen
  header values) in the characters §3 allows;
- a valid token lacking a scope: 403 ``error="insufficient_scope"`` and
  ``scope="..."``, the scopes needed. A token's scopes are its ``scope``
  claim (space-separated, RFC 9068 §2.2.3) or its ``scp`` list.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import jwt
from jwt.algorithms import HMACAlgorithm

from .errors import HTTPError
from .http import bearer_credentials
from .stores import Store, StoreError
from .stores.base import fail_open_flag

if TYPE_CHECKING:
    from .request import Request

__all__ = ["MAX_TOKEN_LENGTH", "JWTAuth", "TokenRejected"]

F = TypeVar("F", bound=Callable[..., Any])
#: A key: an HMAC secret (str/bytes), a PEM/SSH key, or a `cryptography` key object.
Key: TypeAlias = Any

#: Longest token accepted, in characters (a JWT with a few claims is ~300).
MAX_TOKEN_LENGTH = 8192

logger = logging.getLogger("microweb")
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SEPARATOR = re.compile(r"[\s,]")
# RFC 6750 §3: error_description and scope use %x20-21 / %x23-5B / %x5D-7E (no " or \).
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3
_DESCRIPTIONS: dict[type[Exception], str] = {
    jwt.ExpiredSignatureError: "The token has expired.",
    jwt.ImmatureSignatureError: "The token is not valid yet.",
    jwt.InvalidAudienceError: "The token is for another audience.",
    jwt.InvalidIssuerError: "The token is from another issuer.",
    jwt.InvalidSignatureError: "The token signature is invalid.",
    jwt.InvalidAlgorithmError: "The token algorithm is not allowed.",
    jwt.DecodeError: "The token is malformed.",
}


class TokenRejected(jwt.InvalidTokenError):
    """A token refused by this module; its message is safe to show the client."""


class JWTAuth:
    """Verify (and mint) JWT bearer tokens; see the module docs for each defence."""

    def __init__(
        self,
        key: Key,
        algorithms: Sequence[str] = ("HS256",),
        issuer: str | None = None,
        audience: str | Sequence[str] | None = None,
        leeway: float = 0,
        required_claims: Sequence[str] = ("exp",),
        store: Store | None = None,
        realm: str = "api",
        keys: Mapping[str, Key] | None = None,
        clock: Callable[[], float] = time.time,
        fail_open: bool = False,
    ) -> None:
        for name, value in (("algorithms", algorithms), ("required_claims", required_claims)):
            if isinstance(value, str):
                raise TypeError(f"{name} must be a list, like [{value!r}], not a string")
        self.algorithms = list(algorithms)
        if not self.algorithms:
            raise ValueError("algorithms must name at least one algorithm")
        if any(str(alg).lower() == "none" for alg in self.algorithms):
            raise ValueError("the 'none' algorithm is never allowed (RFC 8725 §3.1)")
        if len({_is_hmac(alg) for alg in self.algorithms}) > 1:
            raise ValueError(
                "HMAC (HS*) and public-key algorithms cannot share one JWTAuth: "
                "that is HS/RS key confusion (RFC 8725 §2.1)"
            )
        if issuer is not None and not isinstance(issuer, str):
            raise TypeError("issuer must be a string (it is compared exactly)")
        if not (isinstance(leeway, int | float) and leeway >= 0):
            raise ValueError("leeway must be a number of seconds >= 0")
        if not realm or _UNSAFE.search(realm):
            raise ValueError(f"realm: printable ASCII, no quotes or backslashes: {realm!r}")
        if key is None and not keys:
            raise ValueError("JWTAuth needs a key, or keys={kid: key}")
        #: When the revocation store fails: accept the token (True) or 503 (False).
        self.fail_open = fail_open_flag("JWTAuth", fail_open)
        self.issuer, self.audience, self.leeway = issuer, audience, leeway
        self.store, self.realm, self.clock = store, realm, clock
        self.required_claims = list(required_claims) + (["jti"] if store is not None else [])
        # kid (None: tokens without a kid) -> ({algorithm: verifying key}, signing key)
        self._keys: dict[str | None, tuple[dict[str, Any], Any]] = {}
        if key is not None:
            self._keys[None] = self._prepare(key, "key")
        for kid, value in (keys or {}).items():
            if not isinstance(kid, str) or not kid:
                raise ValueError(f"a kid is a non-empty string, not {kid!r}")
            self._keys[kid] = self._prepare(value, f"keys[{kid!r}]")

    def _prepare(self, key: Key, name: str) -> tuple[dict[str, Any], Any]:
        """Check `key` against every allowed algorithm; split it into verify/sign halves."""
        verifying: dict[str, Any] = {}
        signing = None
        for alg in self.algorithms:
            algorithm = jwt.get_algorithm_by_name(alg)
            if isinstance(algorithm, HMACAlgorithm):
                _check_hmac_secret(key, name)
            try:
                prepared = algorithm.prepare_key(key)
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise ValueError(f"{name} is not a usable {alg} key: {exc}") from exc
            weak = algorithm.check_key_length(prepared)
            if weak:  # RFC 8725 §3.5
                raise ValueError(f"{name} is too weak for {alg}: {weak}")
            public = getattr(prepared, "public_key", None)  # a private key: keep both halves
            verifying[alg] = public() if public is not None else prepared
            if public is not None or isinstance(algorithm, HMACAlgorithm):
                signing = prepared
        return verifying, signing

    # -- minting -----------------------------------------------------------

    def encode(
        self, claims: Mapping[str, Any], expires_in: int = 900, kid: str | None = None
    ) -> str:
        """A signed token with `claims`, plus ``iat``, ``exp`` (now + `expires_in`
        seconds), the configured ``iss``/``aud``, and a ``jti`` when a store is set.
        Claims passed explicitly win. Signs with `key`, or ``keys[kid]``."""
        if not (_is_number(expires_in) and expires_in > 0):
            raise ValueError("expires_in must be a positive number of seconds")
        if kid not in self._keys:
            raise KeyError(f"no key with kid {kid!r}" if kid else "no default key: pass kid=")
        signing = self._keys[kid][1]
        if signing is None:
            raise ValueError("encode needs the private key; this JWTAuth has only a public one")
        now, audience = int(self.clock()), self.audience
        payload: dict[str, Any] = {"iat": now, "exp": now + expires_in}
        if self.issuer is not None:
            payload["iss"] = self.issuer
        if audience is not None:
            payload["aud"] = audience if isinstance(audience, str) else list(audience)
        if self.store is not None:
            payload["jti"] = secrets.token_urlsafe(16)
        payload.update(claims)
        _check_claim_types(payload)
        headers = {"kid": kid} if kid is not None else None
        return jwt.encode(payload, signing, algorithm=self.algorithms[0], headers=headers)

    # -- verifying -----------------------------------------------------------

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`; raises a `jwt.PyJWTError` (or
        ``ValueError``/``TypeError`` for malformed input) when it does not verify,
        and `StoreError` when the revocation store fails (unless `fail_open`)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("The token is too long.")
        header = jwt.get_unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        # SECURITY: the header only picks among keys and algorithms we configured.
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise jwt.InvalidAlgorithmError("algorithm not allowed")
        if not (kid is None or isinstance(kid, str)) or kid not in self._keys:
            raise TokenRejected("The token names an unknown key (kid).")
        claims = jwt.decode(
            token,
            self._keys[kid][0][alg],
            algorithms=self.algorithms,
            audience=self.audience,
            issuer=self.issuer,
            # NOTE: PyJWT's time checks read the wall clock; _check_times uses self.clock.
            options={"require": self.required_claims, "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False, "enforce_minimum_key_length": True},
        )  # fmt: skip
        self._check_times(claims)
        if self.store is not None and self._revoked(self.store, claims["jti"]):
            raise TokenRejected("The token has been revoked.")
        return claims

    def _revoked(self, store: Store, jti: str) -> bool:
        """Whether `jti` is revoked; a `StoreError` propagates unless `fail_open`."""
        try:
            return store.get(_revoked_key(jti)) is not None
        except StoreError as exc:
            if not self.fail_open:
                raise  # NOTE: the App answers 503 and logs it (microweb.errors)
            # SECURITY: a revoked token is accepted while this lasts; hence the warning.
            logger.warning("JWTAuth: the revocation store failed (%s); token accepted", exc)
            return False

    def _check_times(self, claims: dict[str, Any]) -> None:
        now, leeway = self.clock(), self.leeway
        for name in ("exp", "nbf", "iat"):
            if name in claims and not _is_number(claims[name]):
                raise TokenRejected(f"The {name} claim is not a number.")
        if "exp" in claims and claims["exp"] <= now - leeway:  # RFC 7519 §4.1.4
            raise jwt.ExpiredSignatureError
        # RFC 7519 §4.1.5 (nbf); an iat in the future is refused too, as PyJWT does.
        if max(claims.get("nbf", -math.inf), claims.get("iat", -math.inf)) > now + leeway:
            raise jwt.ImmatureSignatureError

    def revoke(self, jti: str, expires_at: float) -> None:
        """Refuse the token `jti` from now until `expires_at` (its ``exp``) has passed."""
        if self.store is None:
            raise RuntimeError("revoke needs a store: JWTAuth(..., store=...)")
        if not isinstance(jti, str) or not _is_number(expires_at):
            raise TypeError("revoke(jti: str, expires_at: a number, the token's exp)")
        # The token verifies until exp + leeway; after that it needs no entry.
        ttl = math.ceil(expires_at + self.leeway - self.clock())
        if ttl > 0:
            self.store.add(_revoked_key(jti), b"1", ttl=ttl)

    # -- the decorator -------------------------------------------------------

    def required(self, scopes: Sequence[str] = ()) -> Callable[[F], F]:
        """``@auth.required(scopes=["notes:write"])``: a handler for bearers of a
        valid token holding every scope listed; the claims are on ``req.claims``."""
        if callable(scopes) or isinstance(scopes, str):
            raise TypeError('use @auth.required() or @auth.required(scopes=["a", "b"])')
        needed = list(scopes)
        for scope in needed:
            if not _SCOPE_TOKEN.fullmatch(scope):
                raise ValueError(f"not a valid scope (RFC 6749 §3.3): {scope!r}")

        def decorate(handler: F) -> F:
            @wraps(handler)
            def guarded(req: Request, *args: Any, **kwargs: Any) -> Any:
                claims = self.authenticate(req.environ)
                if not self._scopes(claims).issuperset(needed):
                    raise self._challenge(
                        403, "insufficient_scope", "The token lacks a scope this needs.", needed
                    )
                req.environ["microweb.claims"] = claims
                return handler(req, *args, **kwargs)

            return cast(F, guarded)

        return decorate

    def authenticate(self, environ: Mapping[str, Any]) -> dict[str, Any]:
        """The verified claims of the request's bearer token, or an `HTTPError` raised."""
        token = bearer_credentials(environ.get("HTTP_AUTHORIZATION"))
        if token is None:  # RFC 6750 §3.1: no credentials, no error code
            raise self._challenge(401)
        # SECURITY: the size cap comes before any parsing (a 100 KB header is cheap to send).
        if len(token) > MAX_TOKEN_LENGTH:
            raise self._challenge(401, "invalid_token", "The token is too long.")
        if not token or _SEPARATOR.search(token):  # RFC 6750 §3.1: no token, or several
            raise self._challenge(400, "invalid_request", "Send one token: Bearer <token>.")
        try:
            if not _B64TOKEN.fullmatch(token):  # RFC 6750 §2.1: a malformed token
                raise TokenRejected("The token is malformed.")
            return self.decode(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # NOTE: ValueError covers binascii.Error and UnicodeDecodeError too.
            raise self._challenge(401, "invalid_token", _describe(exc)) from None

    def _scopes(self, claims: dict[str, Any]) -> set[str]:
        value = claims.get("scope", claims.get("scp", ""))  # scope: a string, RFC 9068 §2.2.3
        if isinstance(value, str):
            return set(value.split())
        strings = isinstance(value, list) and all(isinstance(item, str) for item in value)
        if strings and "scope" not in claims:  # scp: a list of strings
            return set(value)
        raise self._challenge(401, "invalid_token", "The token's scope claim is malformed.")

    def _challenge(
        self,
        status: int,
        error: str | None = None,
        description: str | None = None,
        scopes: Sequence[str] = (),
    ) -> HTTPError:
        """The `HTTPError` with its ``WWW-Authenticate: Bearer ...`` (RFC 6750 §3)."""
        params = [f'realm="{self.realm}"']
        if error is not None:
            params.append(f'error="{error}"')
        if description is not None:
            description = _UNSAFE.sub("", description)
            params.append(f'error_description="{description}"')
        if scopes:
            params.append(f'scope="{" ".join(scopes)}"')
        detail = description or "This resource needs a bearer token (Authorization: Bearer)."
        return HTTPError(status, detail, [("WWW-Authenticate", "Bearer " + ", ".join(params))])


def _is_hmac(alg: str) -> bool:
    try:
        return isinstance(jwt.get_algorithm_by_name(alg), HMACAlgorithm)
    except NotImplementedError as exc:  # unknown, or RS*/ES* without cryptography
        raise ValueError(f"unsupported algorithm {alg!r} (RS*/ES*/PS* need PyJWT[crypto])") from exc


def _check_hmac_secret(key: Key, name: str) -> None:
    secret = key.encode() if isinstance(key, str) else key
    if not isinstance(secret, bytes):
        raise TypeError(f"{name}: an HMAC key is a str or bytes secret")
    # SECURITY: a public key used as an HMAC secret is HS/RS confusion (RFC 8725 §2.1).
    if b"-----BEGIN" in secret or secret.lstrip().startswith((b"ssh-", b"ecdsa-sha2-")):
        raise ValueError(f"{name} looks like a PEM/SSH key: it cannot be an HMAC secret")


def _is_number(value: Any) -> bool:
    """A JSON NumericDate: an int, or a finite float (no bool, no NaN/Infinity)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _check_claim_types(claims: Mapping[str, Any]) -> None:
    """Refuse at encode what verification would refuse later (RFC 7519 §4.1)."""
    for name in ("sub", "iss", "jti", "scope"):
        if name in claims and not isinstance(claims[name], str):
            raise TypeError(f"the {name!r} claim must be a string, not {claims[name]!r}")
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _is_number(claims[name]):
            raise TypeError(f"the {name!r} claim must be a number (seconds since the epoch)")
    for name in ("aud", "scp"):
        value = claims.get(name, [])
        strings = isinstance(value, list) and all(isinstance(item, str) for item in value)
        if not (strings or (name == "aud" and isinstance(value, str))):
            raise TypeError(f"the {name!r} claim must be a string or a list of strings")


def _describe(exc: BaseException) -> str:
    """A fixed, safe ``error_description`` for a verification failure."""
    if isinstance(exc, TokenRejected):
        return str(exc)
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The token has no {exc.claim} claim."
    for cls in type(exc).__mro__:
        if cls in _DESCRIPTIONS:
            return _DESCRIPTIONS[cls]
    return "The token is invalid."


def _revoked_key(jti: str) -> str:
    # NOTE: hashed, so that any jti (any length, any characters) makes a valid store key.
    digest = hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()
    return f"microweb.auth:revoked:{digest}"

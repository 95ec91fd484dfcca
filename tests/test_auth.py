"""JWTAuth (microweb.auth): RFC 6750 bearer challenges, RFC 7519 claims, RFC 8725 attacks.

Every request goes through `microweb.testing.Client` (WSGI lint on); time is a
fake clock handed to `JWTAuth` and `MemoryStore`, so nothing sleeps. Attack
tokens are minted by PyJWT or crafted by hand (`craft`), never by the code
under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from redis_server import RedisServer
from store_outages import locked_sqlite, refused_redis

from microweb import App, Request
from microweb.auth import MAX_TOKEN_LENGTH, JWTAuth
from microweb.errors import STORE_UNAVAILABLE
from microweb.stores import RedisStore
from microweb.stores.base import STORE_RETRY_AFTER
from microweb.testing import Client

NOW = 1_700_000_000
KEY = "k" * 40  # an HS256 secret of 40 bytes (>= 32, RFC 7518 §3.2)
OTHER_KEY = "o" * 40
ISS = "https://id.example.com"
AUD = "notes-api"
CLAIMS: dict[str, Any] = {"sub": "alice", "iss": ISS, "aud": AUD, "iat": NOW, "exp": NOW + 600}
BARE = 'Bearer realm="api"'


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Keys:
    rsa_private: rsa.RSAPrivateKey
    rsa_public_pem: bytes
    ec_private: ec.EllipticCurvePrivateKey
    ec_public_pem: bytes


@pytest.fixture(scope="module")
def keys() -> Keys:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return Keys(rsa_key, public_pem(rsa_key), ec_key, public_pem(ec_key))


def public_pem(private: Any) -> bytes:
    return private.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: Any, payload: Any, key: bytes | None = KEY.encode()) -> str:
    """A token made by hand: JSON (or raw bytes) segments, HMAC-SHA256 with `key` (or none)."""
    segments = [
        b64(s if isinstance(s, bytes) else json.dumps(s).encode()) for s in (header, payload)
    ]
    signing_input = ".".join(segments).encode()
    signature = hmac.new(key, signing_input, hashlib.sha256).digest() if key else b""
    return f"{signing_input.decode()}.{b64(signature)}"


def hs(claims: dict[str, Any], key: str = KEY, **kwargs: Any) -> str:
    return jwt.encode(claims, key, algorithm=kwargs.pop("algorithm", "HS256"), **kwargs)


def make_client(auth: JWTAuth, scopes: list[str] | None = None) -> Client:
    app = App()

    @app.get("/me")
    @auth.required(scopes=scopes or [])
    def me(req: Request) -> dict[str, Any]:
        return req.claims

    @app.post("/logout")
    @auth.required()
    def logout(req: Any) -> None:
        auth.revoke(req.claims["jti"], req.claims["exp"])

    return Client(app)


def get(client: Client, token: str | None, status: int, **kwargs: Any) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.get("/me", headers=headers, status=status, **kwargs)


def hs_auth(**kwargs: Any) -> JWTAuth:
    kwargs.setdefault("clock", Clock())
    return JWTAuth(KEY, issuer=ISS, audience=AUD, **kwargs)


# --- interop: tokens minted by PyJWT itself -------------------------------------------


@pytest.mark.parametrize(
    ("alg", "signing", "verifying"),
    [
        pytest.param("HS256", lambda k: KEY, lambda k: KEY, id="rfc7518-3.2-HS256"),
        pytest.param("HS512", lambda k: "s" * 64, lambda k: "s" * 64, id="rfc7518-3.2-HS512"),
        pytest.param(
            "RS256", lambda k: k.rsa_private, lambda k: k.rsa_public_pem, id="rfc7518-3.3-RS256"
        ),
        pytest.param(
            "RS256", lambda k: k.rsa_private, lambda k: k.rsa_private, id="RS256-private-key-given"
        ),
        pytest.param(
            "ES256", lambda k: k.ec_private, lambda k: k.ec_public_pem, id="rfc7518-3.4-ES256"
        ),
    ],
)
def test_rfc7519_tokens_minted_by_pyjwt_are_accepted(
    keys: Keys, alg: str, signing: Callable[[Keys], Any], verifying: Callable[[Keys], Any]
) -> None:
    auth = JWTAuth(verifying(keys), algorithms=[alg], issuer=ISS, audience=AUD, clock=Clock())
    token = jwt.encode(CLAIMS, signing(keys), algorithm=alg)
    assert get(make_client(auth), token, 200).json == CLAIMS


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        pytest.param("HS256", lambda k: KEY, id="HS256"),
        pytest.param("RS256", lambda k: k.rsa_private, id="RS256"),
        pytest.param("ES256", lambda k: k.ec_private, id="ES256"),
    ],
)
def test_rfc7519_encode_round_trips_and_pyjwt_reads_it(
    keys: Keys, alg: str, key: Callable[[Keys], Any]
) -> None:
    auth = JWTAuth(key(keys), algorithms=[alg], issuer=ISS, audience=AUD, clock=Clock())
    token = auth.encode({"sub": "alice", "scope": "profile"}, expires_in=300)
    claims = get(make_client(auth), token, 200).json
    assert claims == {"sub": "alice", "scope": "profile", "iss": ISS, "aud": AUD,
                      "iat": NOW, "exp": NOW + 300}  # fmt: skip
    verifying = auth._keys[None][0][alg]
    decoded = jwt.decode(token, verifying, algorithms=[alg], audience=AUD,
                         options={"verify_exp": False, "verify_iat": False})  # fmt: skip
    assert decoded == claims


def test_encode_adds_a_jti_only_with_a_store() -> None:
    from microweb.stores import MemoryStore

    without = jwt.decode(hs_auth().encode({"sub": "a"}), options={"verify_signature": False})
    with_store = hs_auth(store=MemoryStore()).encode({"sub": "a"})
    jti = jwt.decode(with_store, options={"verify_signature": False})["jti"]
    assert "jti" not in without
    assert isinstance(jti, str) and len(jti) >= 16


def test_req_claims_raises_without_the_decorator() -> None:
    app = App()

    @app.get("/open")
    def open_(req: Request) -> dict[str, Any]:
        return req.claims

    assert Client(app).get("/open", status=500).status_int == 500


# --- RFC 6750 §2.1, §3.1: where the token is read from, and the bare challenge ------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/me", {}, id="rfc6750-3.1-no-authorization-header"),
        pytest.param("/me", {"Authorization": "Basic YTpi"}, id="rfc6750-3.1-basic-scheme"),
        pytest.param("/me", {"Authorization": ""}, id="rfc6750-3.1-empty-header"),
        pytest.param("/me?access_token={t}", {}, id="rfc6750-2.3-query-string-ignored"),
        pytest.param("/me", {"Authorization": "Bearertoken{t}"}, id="no-space-not-bearer"),
    ],
)
def test_rfc6750_3_1_no_bearer_token_is_401_with_a_bare_challenge(
    path: str, headers: dict[str, str]
) -> None:
    auth = hs_auth()
    token = hs(CLAIMS)
    headers = {name: value.format(t=token) for name, value in headers.items()}
    reply = make_client(auth).get(path.format(t=token), headers=headers, status=401)
    assert reply.headers["WWW-Authenticate"] == BARE  # no error code, RFC 6750 §3.1
    assert reply.content_type == "application/problem+json"


def test_rfc6750_2_2_a_token_in_a_form_body_is_ignored() -> None:
    auth = hs_auth()
    app = App()

    @app.post("/notes")
    @auth.required()
    def notes(req: Any) -> None:
        return None

    reply = Client(app).post("/notes", {"access_token": hs(CLAIMS)}, status=401)
    assert reply.headers["WWW-Authenticate"] == BARE


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Bearer", id="rfc6750-3.1-bearer-without-token"),
        pytest.param("Bearer    ", id="rfc6750-3.1-bearer-blank-token"),
        pytest.param("Bearer {t} {t}", id="rfc6750-3.1-two-tokens"),
        pytest.param("Bearer {t}, Bearer {t}", id="rfc6750-3.1-two-credentials"),
        pytest.param("Bearer {t},", id="rfc6750-3.1-trailing-comma"),
    ],
)
def test_rfc6750_3_1_a_malformed_authorization_header_is_400_invalid_request(value: str) -> None:
    reply = make_client(hs_auth()).get(
        "/me", headers={"Authorization": value.format(t=hs(CLAIMS))}, status=400
    )
    assert reply.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_request", '
        'error_description="Send one token: Bearer <token>."'
    )


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("bearer {t}", id="rfc7235-2.1-scheme-lowercase"),
        pytest.param("BEARER {t}", id="rfc7235-2.1-scheme-uppercase"),
        pytest.param("Bearer   {t}", id="rfc7235-2.1-several-spaces"),
    ],
)
def test_rfc7235_2_1_the_scheme_is_case_insensitive(value: str) -> None:
    headers = {"Authorization": value.format(t=hs(CLAIMS))}
    make_client(hs_auth()).get("/me", headers=headers, status=200)


def test_realm_is_configurable() -> None:
    reply = get(make_client(hs_auth(realm="notes")), None, 401)
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="notes"'


# --- RFC 8725 / RFC 7519 attacks: each is 401 invalid_token, never a 500 ------------

HEADER = {"alg": "HS256", "typ": "JWT"}
Factory = Callable[[Keys], str]


def _confusion(variant: Callable[[bytes], bytes]) -> Factory:
    return lambda k: craft(HEADER, CLAIMS, key=variant(k.rsa_public_pem))


ATTACKS = [
    # RFC 8725 §2.1 / §3.1: algorithms
    pytest.param("hs", lambda k: craft({"alg": "none"}, CLAIMS, key=None),
                 id="rfc8725-2.1-alg-none-crafted"),
    pytest.param("hs", lambda k: craft({"alg": "None"}, CLAIMS, key=None),
                 id="rfc8725-2.1-alg-None-crafted"),
    pytest.param("hs", lambda k: jwt.encode(CLAIMS, "", algorithm="none"),
                 id="rfc8725-2.1-alg-none-pyjwt"),
    pytest.param("hs", lambda k: craft({"typ": "JWT"}, CLAIMS), id="rfc8725-3.1-no-alg"),
    pytest.param("hs", lambda k: craft({"alg": ["HS256"]}, CLAIMS), id="rfc8725-3.1-alg-a-list"),
    pytest.param("hs", lambda k: hs(CLAIMS, "h" * 64, algorithm="HS512"),
                 id="rfc8725-3.1-alg-outside-the-list"),
    pytest.param("rs", _confusion(lambda pem: pem), id="rfc8725-2.1-hs-rs-confusion-pem"),
    pytest.param("rs", _confusion(lambda pem: pem.replace(b"\n", b"\r\n")),
                 id="rfc8725-2.1-hs-rs-confusion-pem-crlf"),
    pytest.param("rs", _confusion(lambda pem: pem.rstrip(b"\n")),
                 id="rfc8725-2.1-hs-rs-confusion-pem-no-final-newline"),
    pytest.param("rs", _confusion(lambda pem: b"  " + pem + b"\n\n"),
                 id="rfc8725-2.1-hs-rs-confusion-pem-padded"),
    pytest.param("hs", lambda k: hs(CLAIMS, OTHER_KEY), id="rfc7515-5.2-wrong-key"),
    # RFC 7515 §4.1.11: crit
    pytest.param("hs", lambda k: hs(CLAIMS, headers={"crit": ["urn:x"], "urn:x": 1}),
                 id="rfc7515-4.1.11-unknown-crit"),
    pytest.param("hs", lambda k: craft({**HEADER, "crit": "b64"}, CLAIMS),
                 id="rfc7515-4.1.11-crit-not-a-list"),
    pytest.param("hs", lambda k: craft({**HEADER, "b64": False, "crit": ["b64"]}, CLAIMS),
                 id="rfc7797-detached-payload"),
    # RFC 7519 §4.1: claims
    pytest.param("hs", lambda k: hs({**CLAIMS, "exp": None}), id="rfc7519-4.1.4-missing-exp"),
    pytest.param("hs", lambda k: hs({k2: v for k2, v in CLAIMS.items() if k2 != "exp"}),
                 id="rfc7519-4.1.4-no-exp"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "exp": NOW - 1}), id="rfc7519-4.1.4-expired"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "exp": NOW}), id="rfc7519-4.1.4-exp-is-now"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "exp": "9999999999"}),
                 id="rfc7519-4.1.4-exp-a-string"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "exp": True}), id="rfc7519-4.1.4-exp-a-bool"),
    pytest.param("hs", lambda k: craft(HEADER, json.dumps(CLAIMS).replace(
        str(NOW + 600), "NaN").encode()), id="rfc7519-2-exp-NaN"),
    pytest.param("hs", lambda k: craft(HEADER, json.dumps(CLAIMS).replace(
        str(NOW + 600), "1e400").encode()), id="rfc7519-2-exp-infinite"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "nbf": NOW + 60}), id="rfc7519-4.1.5-nbf-future"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "nbf": "soon"}), id="rfc7519-4.1.5-nbf-a-string"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "iat": NOW + 60}), id="rfc7519-4.1.6-iat-future"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "aud": "other-api"}), id="rfc7519-4.1.3-wrong-aud"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "aud": ["other-api", "x"]}),
                 id="rfc7519-4.1.3-wrong-aud-list"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "aud": [AUD, 7]}),
                 id="rfc7519-4.1.3-aud-list-not-strings"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "aud": AUD[:5]}), id="rfc7519-4.1.3-aud-prefix"),
    pytest.param("hs", lambda k: hs({k2: v for k2, v in CLAIMS.items() if k2 != "aud"}),
                 id="rfc8725-3.9-missing-aud"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "iss": "https://id.example"}),
                 id="rfc8725-3.8-iss-a-prefix-of-ours"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "iss": ISS + ".evil.example"}),
                 id="rfc8725-3.8-iss-ours-is-a-prefix"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "iss": ISS.upper()}), id="rfc8725-3.8-iss-case"),
    pytest.param("hs", lambda k: craft(HEADER, {**CLAIMS, "iss": [ISS]}),
                 id="rfc7519-4.1.1-iss-a-list"),
    pytest.param("hs", lambda k: craft(HEADER, {**CLAIMS, "sub": 42}),
                 id="rfc7519-4.1.2-sub-not-a-string"),
    pytest.param("hs", lambda k: craft(HEADER, {**CLAIMS, "jti": 42}),
                 id="rfc7519-4.1.7-jti-not-a-string"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "scope": ["a"]}), id="rfc9068-scope-not-a-string"),
    pytest.param("hs", lambda k: hs({**CLAIMS, "scp": {"a": 1}}), id="rfc9068-scp-not-a-list"),
    # RFC 7515 §7.1 / RFC 7519 §7.2: malformed tokens
    pytest.param("hs", lambda k: hs(CLAIMS).rsplit(".", 1)[0], id="rfc7519-7.2-two-segments"),
    pytest.param("hs", lambda k: hs(CLAIMS) + ".e30", id="rfc7519-7.2-four-segments"),
    pytest.param("hs", lambda k: "abcde.abcde.abcde", id="rfc7515-2-bad-base64-length"),
    pytest.param("hs", lambda k: hs(CLAIMS).replace(".", "+/.", 1), id="rfc7515-2-base64-not-url"),
    pytest.param("hs", lambda k: "!!!!.@@@@.####", id="rfc6750-2.1-not-b64token"),
    pytest.param("hs", lambda k: "%7B%7D.e30.sig", id="rfc6750-2.1-percent-encoded"),
    pytest.param("hs", lambda k: craft(b"not json", CLAIMS), id="rfc7515-header-not-json"),
    pytest.param("hs", lambda k: craft(["HS256"], CLAIMS), id="rfc7515-header-not-an-object"),
    pytest.param("hs", lambda k: craft(b"\xff\xfe", CLAIMS), id="rfc7515-header-not-utf8"),
    pytest.param("hs", lambda k: craft(b"[" * 3000 + b"]" * 3000, CLAIMS),
                 id="rfc7515-header-nested-deep"),
    pytest.param("hs", lambda k: craft(HEADER, [CLAIMS]), id="rfc7519-7.2-payload-not-an-object"),
    pytest.param("hs", lambda k: craft(HEADER, b"\xff{}"), id="rfc7519-7.2-payload-not-utf8"),
    pytest.param("hs", lambda k: craft(HEADER, b"[" * 3000 + b"]" * 3000),
                 id="rfc7519-7.2-payload-nested-deep"),
    pytest.param("hs", lambda k: craft({**HEADER, "kid": "nope"}, CLAIMS),
                 id="rfc8725-3.10-unknown-kid"),
    pytest.param("hs", lambda k: craft({**HEADER, "kid": {"a": 1}}, CLAIMS),
                 id="rfc8725-3.10-kid-not-a-string"),
    pytest.param("hs", lambda k: craft({**HEADER, "kid": "../../etc/passwd"}, CLAIMS),
                 id="rfc8725-3.10-kid-path"),
    pytest.param("hs", lambda k: "a" * 100_000, id="100KB-junk"),
    pytest.param("hs", lambda k: craft(HEADER, {**CLAIMS, "pad": "x" * 100_000}),
                 id="100KB-signed-token"),
    pytest.param("hs", lambda k: craft(HEADER, {**CLAIMS, "pad": "x" * MAX_TOKEN_LENGTH}),
                 id="just-over-the-cap"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "make_token"), ATTACKS)
def test_rfc6750_3_1_attacks_are_401_invalid_token(
    keys: Keys, kind: str, make_token: Factory
) -> None:
    if kind == "hs":
        auth = hs_auth()
    else:
        auth = JWTAuth(keys.rsa_public_pem, algorithms=["RS256"], issuer=ISS, audience=AUD,
                       clock=Clock())  # fmt: skip
    token = make_token(keys)
    reply = get(make_client(auth), token, 401)
    challenge = reply.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="invalid_token", error_description="')
    assert challenge.count('"') == 6  # nothing the attacker sent broke out of the quotes
    description = challenge.split('error_description="')[1][:-1]
    assert reply.json["detail"] == description
    assert token[:40] not in challenge and token[-20:] not in reply.text


@pytest.mark.parametrize(
    ("token", "description"),
    [
        pytest.param(hs({**CLAIMS, "exp": NOW - 1}), "The token has expired.", id="expired"),
        pytest.param(hs({**CLAIMS, "nbf": NOW + 9}), "The token is not valid yet.", id="nbf"),
        pytest.param(hs({**CLAIMS, "aud": "x"}), "The token is for another audience.", id="aud"),
        pytest.param(hs({**CLAIMS, "iss": "x"}), "The token is from another issuer.", id="iss"),
        pytest.param(hs(CLAIMS, OTHER_KEY), "The token signature is invalid.", id="signature"),
        pytest.param(hs({"sub": "a", "iss": ISS, "aud": AUD}), "The token has no exp claim.",
                     id="rfc7519-4.1.4-no-exp"),
        pytest.param(craft({"alg": "none"}, CLAIMS, None), "The token algorithm is not allowed.",
                     id="alg-none"),
        pytest.param("x" * 9000, "The token is too long.", id="size-cap"),
        pytest.param("a.b", "The token is malformed.", id="two-segments"),
        # PyJWT's message would quote the attacker's extension name: ours never does.
        pytest.param(hs(CLAIMS, headers={"crit": ['x", error="forged\\']}),
                     "The token is invalid.", id="crit-with-quotes-not-echoed"),
    ],
)  # fmt: skip
def test_rfc6750_3_the_error_description_is_ours_and_safe(token: str, description: str) -> None:
    reply = get(make_client(hs_auth()), token, 401)
    assert reply.headers["WWW-Authenticate"] == (
        f'Bearer realm="api", error="invalid_token", error_description="{description}"'
    )


def test_rfc8725_3_1_every_tampered_character_is_401() -> None:
    """Change each character of a valid token in turn: always 401, never 200 or 500."""
    client, token = make_client(hs_auth()), hs(CLAIMS)
    for i, char in enumerate(token):
        if char == ".":
            continue
        tampered = token[:i] + ("A" if char != "A" else "B") + token[i + 1 :]
        get(client, tampered, 401)


@pytest.mark.parametrize(
    ("leeway", "claims", "status"),
    [
        pytest.param(
            30, {**CLAIMS, "exp": NOW - 29}, 200, id="rfc7519-4.1.4-expired-within-leeway"
        ),
        pytest.param(30, {**CLAIMS, "exp": NOW - 30}, 401, id="rfc7519-4.1.4-expired-past-leeway"),
        pytest.param(30, {**CLAIMS, "nbf": NOW + 30}, 200, id="rfc7519-4.1.5-nbf-within-leeway"),
        pytest.param(30, {**CLAIMS, "nbf": NOW + 31}, 401, id="rfc7519-4.1.5-nbf-past-leeway"),
        pytest.param(0, {**CLAIMS, "nbf": NOW}, 200, id="rfc7519-4.1.5-nbf-is-now"),
        pytest.param(0, {**CLAIMS, "exp": NOW + 0.5}, 200, id="rfc7519-2-fractional-exp"),
        pytest.param(
            0,
            {**CLAIMS, "exp": 10**400, "nbf": -(10**400)},
            200,
            id="rfc7519-2-huge-ints-no-overflow",
        ),
        pytest.param(0, {**CLAIMS, "exp": -(10**400)}, 401, id="rfc7519-2-huge-negative-exp"),
    ],
)
def test_rfc7519_time_claims_follow_the_clock_and_leeway(
    leeway: int, claims: dict[str, Any], status: int
) -> None:
    get(make_client(hs_auth(leeway=leeway)), hs(claims), status)


def test_rfc7519_4_1_4_a_token_expires_as_the_clock_moves() -> None:
    clock = Clock()
    client = make_client(hs_auth(clock=clock))
    token = hs(CLAIMS)
    get(client, token, 200)
    clock.now = NOW + 600
    get(client, token, 401)


def test_required_claims_can_be_extended() -> None:
    auth = hs_auth(required_claims=("exp", "sub", "nbf"))
    get(make_client(auth), hs(CLAIMS), 401)
    get(make_client(auth), hs({**CLAIMS, "nbf": NOW}), 200)


# --- construction: the allow-list and the keys -------------------------------------


def _ssh(keys: Keys) -> bytes:
    return keys.rsa_private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )


@pytest.mark.parametrize(
    ("key", "options", "error"),
    [
        pytest.param(lambda k: KEY, {"algorithms": ["none"]}, ValueError, id="rfc8725-3.1-none"),
        pytest.param(lambda k: KEY, {"algorithms": ["HS256", "NONE"]}, ValueError,
                     id="rfc8725-3.1-none-among-others"),
        pytest.param(lambda k: KEY, {"algorithms": ["HS256", "RS256"]}, ValueError,
                     id="rfc8725-2.1-hmac-and-rsa-mixed"),
        pytest.param(lambda k: k.rsa_public_pem, {"algorithms": ["HS256", "RS256"]}, ValueError,
                     id="rfc8725-2.1-hmac-and-rsa-mixed-pem"),
        pytest.param(lambda k: k.rsa_public_pem, {}, ValueError, id="rfc8725-2.1-pem-as-hmac-key"),
        pytest.param(lambda k: k.rsa_public_pem.decode(), {}, ValueError,
                     id="rfc8725-2.1-pem-str-as-hmac-key"),
        pytest.param(lambda k: b"\n  " + k.rsa_public_pem.replace(b"\n", b"\r\n"), {}, ValueError,
                     id="rfc8725-2.1-whitespace-altered-pem-as-hmac-key"),
        pytest.param(lambda k: b" " + _ssh(k), {}, ValueError, id="rfc8725-2.1-ssh-key-as-hmac"),
        pytest.param(lambda k: k.ec_public_pem, {"algorithms": ["HS512"]}, ValueError,
                     id="rfc8725-2.1-ec-pem-as-hs512-key"),
        pytest.param(lambda k: "x" * 31, {}, ValueError, id="rfc8725-3.5-hs256-key-31-bytes"),
        pytest.param(lambda k: "x" * 63, {"algorithms": ["HS512"]}, ValueError,
                     id="rfc7518-3.2-hs512-key-63-bytes"),
        pytest.param(lambda k: "", {}, ValueError, id="empty-key"),
        pytest.param(lambda k: KEY, {"algorithms": ["RS256"]}, ValueError,
                     id="secret-as-rsa-key"),
        pytest.param(lambda k: k.ec_public_pem, {"algorithms": ["RS256"]}, ValueError,
                     id="ec-key-for-rsa"),
        pytest.param(lambda k: rsa.generate_private_key(65537, 1024), {"algorithms": ["RS256"]},
                     ValueError, id="rfc8725-3.5-rsa-1024-bits"),
        pytest.param(lambda k: KEY, {"algorithms": ["HS257"]}, ValueError, id="unknown-alg"),
        pytest.param(lambda k: KEY, {"algorithms": []}, ValueError, id="no-algorithms"),
        pytest.param(lambda k: KEY, {"algorithms": "HS256"}, TypeError, id="algorithms-a-string"),
        pytest.param(lambda k: 12345, {}, TypeError, id="key-not-bytes"),
        pytest.param(lambda k: None, {}, ValueError, id="no-key-at-all"),
        pytest.param(lambda k: KEY, {"keys": {"": KEY}}, ValueError, id="empty-kid"),
        pytest.param(lambda k: KEY, {"keys": {"a": "short"}}, ValueError, id="weak-rotated-key"),
        pytest.param(lambda k: KEY, {"realm": 'a"b'}, ValueError, id="rfc6750-3-realm-quote"),
        pytest.param(lambda k: KEY, {"leeway": -1}, ValueError, id="negative-leeway"),
        pytest.param(lambda k: KEY, {"issuer": ["a"]}, TypeError, id="issuer-not-a-string"),
        pytest.param(lambda k: KEY, {"required_claims": "exp"}, TypeError,
                     id="required-claims-a-string"),
    ],
)  # fmt: skip
def test_rfc8725_unsafe_configurations_are_refused_at_startup(
    keys: Keys, key: Callable[[Keys], Any], options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        JWTAuth(key(keys), **options)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda pem: pem, id="pem"),
        pytest.param(lambda pem: pem.replace(b"\n", b"\r\n"), id="pem-crlf"),
        pytest.param(lambda pem: b"\n\n " + pem.rstrip(), id="pem-reindented"),
    ],
)
def test_rfc8725_2_1_pyjwt_also_refuses_a_public_key_as_an_hmac_secret(
    keys: Keys, variant: Callable[[bytes], bytes]
) -> None:
    """Defence in depth: even without JWTAuth's own check, PyJWT refuses the confusion."""
    pem = variant(keys.rsa_public_pem)
    token = craft(HEADER, CLAIMS, key=pem)
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, pem, algorithms=["HS256"])
    with pytest.raises(jwt.InvalidKeyError):
        jwt.encode(CLAIMS, pem, algorithm="HS256")


def test_a_public_key_only_auth_verifies_but_cannot_encode(keys: Keys) -> None:
    auth = JWTAuth(keys.rsa_public_pem, algorithms=["RS256"], clock=Clock())
    with pytest.raises(ValueError, match="private key"):
        auth.encode({"sub": "alice"})
    token = jwt.encode({"exp": NOW + 1}, keys.rsa_private, algorithm="RS256")
    assert auth.decode(token) == {"exp": NOW + 1}


@pytest.mark.parametrize(
    ("claims", "options", "error"),
    [
        pytest.param({"sub": 42}, {}, TypeError, id="rfc7519-4.1.2-sub-int"),
        pytest.param({"sub": None}, {}, TypeError, id="rfc7519-4.1.2-sub-none"),
        pytest.param({"iss": 1}, {}, TypeError, id="rfc7519-4.1.1-iss-int"),
        pytest.param({"exp": "tomorrow"}, {}, TypeError, id="rfc7519-4.1.4-exp-a-string"),
        pytest.param({"nbf": float("nan")}, {}, TypeError, id="rfc7519-4.1.5-nbf-nan"),
        pytest.param({"iat": True}, {}, TypeError, id="rfc7519-4.1.6-iat-bool"),
        pytest.param({"aud": 5}, {}, TypeError, id="rfc7519-4.1.3-aud-int"),
        pytest.param({"aud": ["a", 5]}, {}, TypeError, id="rfc7519-4.1.3-aud-list-mixed"),
        pytest.param({"jti": 7}, {}, TypeError, id="rfc7519-4.1.7-jti-int"),
        pytest.param({"scope": ["a", "b"]}, {}, TypeError, id="rfc9068-scope-a-list"),
        pytest.param({"scp": "a b"}, {}, TypeError, id="scp-a-string"),
        pytest.param({}, {"expires_in": 0}, ValueError, id="expires-in-zero"),
        pytest.param({}, {"expires_in": -5}, ValueError, id="expires-in-negative"),
        pytest.param({}, {"kid": "nope"}, KeyError, id="unknown-kid"),
    ],
)
def test_rfc7519_encode_checks_claim_types(
    claims: dict[str, Any], options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        hs_auth().encode(claims, **options)


def test_encode_claims_passed_explicitly_win() -> None:
    auth = hs_auth()
    token = auth.encode({"sub": "a", "aud": ["x", AUD], "exp": NOW + 5})
    claims = get(make_client(auth), token, 200).json
    assert claims["aud"] == ["x", AUD] and claims["exp"] == NOW + 5


# --- scopes: RFC 6750 §3.1 insufficient_scope ---------------------------------------


@pytest.mark.parametrize(
    ("claims", "needed", "status"),
    [
        pytest.param({"scope": "notes:read profile"}, ["notes:read"], 200, id="rfc9068-scope"),
        pytest.param({"scp": ["notes:read"]}, ["notes:read"], 200, id="scp-list"),
        pytest.param({"scope": "a b"}, ["a", "b"], 200, id="rfc9068-all-scopes-held"),
        pytest.param({"scope": "profile"}, ["notes:read"], 403, id="rfc6750-3.1-scope-missing"),
        pytest.param({}, ["notes:read"], 403, id="rfc6750-3.1-no-scope-claim"),
        pytest.param({"scope": "a"}, ["a", "b"], 403, id="rfc6750-3.1-one-of-two-missing"),
        pytest.param({"scope": "notes:readx"}, ["notes:read"], 403, id="no-prefix-match"),
        pytest.param({"scope": "notes"}, ["notes:read"], 403, id="no-substring-match"),
        pytest.param({"scope": "NOTES:READ"}, ["notes:read"], 403, id="rfc6749-3.3-case-sensitive"),
        pytest.param({}, [], 200, id="no-scopes-needed"),
    ],
)
def test_rfc6750_3_1_scopes(claims: dict[str, Any], needed: list[str], status: int) -> None:
    reply = get(make_client(hs_auth(), scopes=needed), hs({**CLAIMS, **claims}), status)
    if status == 403:
        assert reply.headers["WWW-Authenticate"] == (
            'Bearer realm="api", error="insufficient_scope", '
            'error_description="The token lacks a scope this needs.", '
            f'scope="{" ".join(needed)}"'
        )


@pytest.mark.parametrize(
    ("scopes", "error"),
    [
        pytest.param("notes:read", TypeError, id="a-string"),
        pytest.param(['a"b'], ValueError, id="rfc6749-3.3-quote"),
        pytest.param(["a b"], ValueError, id="rfc6749-3.3-space"),
        pytest.param([""], ValueError, id="empty"),
    ],
)
def test_required_refuses_bad_scopes(scopes: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        hs_auth().required(scopes=scopes)


def test_required_without_parentheses_is_a_clear_error() -> None:
    def handler(req: Any) -> None:
        return None

    with pytest.raises(TypeError, match=r"auth\.required\(\)"):
        hs_auth().required(handler)  # type: ignore[arg-type]


def test_required_keeps_the_handler_name_and_path_params() -> None:
    auth = hs_auth()
    app = App()

    @app.get("/notes/{id:int}")
    @auth.required()
    def note(req: Any, id: int) -> dict[str, Any]:
        return {"id": id, "user": req.claims["sub"]}

    assert note.__name__ == "note"
    assert app.url_for("note", id=3) == "/notes/3"
    reply = Client(app).get("/notes/3", headers={"Authorization": f"Bearer {hs(CLAIMS)}"})
    assert reply.json == {"id": 3, "user": "alice"}


# --- key rotation by kid ------------------------------------------------------------

OLD, NEW = "old-" + "o" * 40, "new-" + "n" * 40


@pytest.mark.parametrize(
    ("default", "token", "status"),
    [
        pytest.param(None, hs(CLAIMS, OLD, headers={"kid": "2024"}), 200, id="old-kid"),
        pytest.param(None, hs(CLAIMS, NEW, headers={"kid": "2025"}), 200, id="new-kid"),
        pytest.param(None, hs(CLAIMS, NEW, headers={"kid": "2024"}), 401, id="kid-other-key"),
        pytest.param(None, hs(CLAIMS, OLD, headers={"kid": "2023"}), 401, id="unknown-kid"),
        pytest.param(None, hs(CLAIMS, OLD), 401, id="no-kid-no-default-key"),
        pytest.param(KEY, hs(CLAIMS, KEY), 200, id="no-kid-default-key"),
        pytest.param(KEY, hs(CLAIMS, OLD), 401, id="no-kid-is-not-any-key"),
        pytest.param(KEY, hs(CLAIMS, KEY, headers={"kid": "2024"}), 401, id="kid-beats-default"),
    ],
)
def test_key_rotation_by_kid(default: str | None, token: str, status: int) -> None:
    auth = JWTAuth(default, issuer=ISS, audience=AUD, keys={"2024": OLD, "2025": NEW},
                   clock=Clock())  # fmt: skip
    get(make_client(auth), token, status)


def test_encode_with_a_kid_names_the_key_in_the_header(keys: Keys) -> None:
    auth = JWTAuth(None, algorithms=["ES256"], keys={"a": keys.ec_private}, clock=Clock())
    token = auth.encode({"sub": "alice"}, kid="a")
    assert jwt.get_unverified_header(token)["kid"] == "a"
    get(make_client(auth), token, 200)
    with pytest.raises(KeyError):
        auth.encode({"sub": "alice"})  # no default key: a kid is needed


# --- revocation by jti (RFC 7519 §4.1.7) --------------------------------------------


def test_rfc7519_4_1_7_a_revoked_jti_is_401_until_the_token_expires() -> None:
    from microweb.stores import MemoryStore

    clock = Clock()
    store = MemoryStore(clock=clock)
    auth = hs_auth(store=store, clock=clock)
    client = make_client(auth)
    token, other = auth.encode({"sub": "alice"}), auth.encode({"sub": "alice"})
    get(client, token, 200)
    client.post("/logout", headers={"Authorization": f"Bearer {token}"}, status=204)
    reply = get(client, token, 401)
    assert reply.headers["WWW-Authenticate"].endswith(
        'error="invalid_token", error_description="The token has been revoked."'
    )
    get(client, other, 200)  # only that token
    # Another worker sharing the store sees the revocation too.
    get(make_client(hs_auth(store=store, clock=clock)), token, 401)
    # The entry lives until the token's exp, then both are gone.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    key = next(k for k in store._data if k.startswith("microweb.auth:revoked:"))
    assert jti not in key  # stored hashed
    clock.now = NOW + 900
    assert store.get(key) is None
    assert "expired" in get(client, token, 401).headers["WWW-Authenticate"]


def test_rfc7519_4_1_7_a_jti_revoked_in_redis_is_refused_by_every_machine(
    redis_url: str,
) -> None:
    from microweb.stores import RedisStore

    clock = Clock()
    with RedisStore(redis_url) as store_a, RedisStore(redis_url) as store_b:
        machine_a = make_client(hs_auth(store=store_a, clock=clock))
        machine_b = make_client(hs_auth(store=store_b, clock=clock))
        token = hs_auth(store=store_a, clock=clock).encode({"sub": "alice"}, expires_in=600)
        other = hs_auth(store=store_a, clock=clock).encode({"sub": "alice"}, expires_in=600)
        get(machine_b, token, 200)
        machine_a.post("/logout", headers={"Authorization": f"Bearer {token}"}, status=204)
        for machine in (machine_a, machine_b):
            reply = get(machine, token, 401)
            assert "revoked" in reply.headers["WWW-Authenticate"]
        get(machine_b, other, 200)  # only that token
        # Kept in Redis until the token would have expired anyway: ttl = exp - now.
        [key] = store_a.client.keys("microweb.auth:revoked:*")
        assert 599_000 < store_a.client.pttl(key) <= 600_000


def test_revocation_counts_the_leeway() -> None:
    from microweb.stores import MemoryStore

    clock = Clock()
    auth = hs_auth(store=MemoryStore(clock=clock), clock=clock, leeway=60)
    token = auth.encode({"sub": "alice"}, expires_in=10)
    claims = auth.decode(token)
    auth.revoke(claims["jti"], claims["exp"])
    clock.now = NOW + 30  # past exp, within the leeway: still refused as revoked
    assert "revoked" in get(make_client(auth), token, 401).headers["WWW-Authenticate"]


def test_revoking_an_expired_token_stores_nothing() -> None:
    from microweb.stores import MemoryStore

    store = MemoryStore(clock=Clock())
    hs_auth(store=store).revoke("some-jti", NOW - 1)
    assert store.get("microweb.auth:revoked:some-jti") is None


def test_with_a_store_a_token_needs_a_jti() -> None:
    from microweb.stores import MemoryStore

    reply = get(make_client(hs_auth(store=MemoryStore())), hs(CLAIMS), 401)
    assert "no jti claim" in reply.headers["WWW-Authenticate"]


def test_revoke_without_a_store_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="store"):
        hs_auth().revoke("j", NOW + 60)


def test_revoke_checks_its_arguments() -> None:
    from microweb.stores import MemoryStore

    auth = hs_auth(store=MemoryStore())
    with pytest.raises(TypeError):
        auth.revoke(5, NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        auth.revoke("j", "tomorrow")  # type: ignore[arg-type]


# --- the revocation store is down: 503 (fail closed) or accepted (fail open) -----------


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_revocation_store_outage_fails_closed_with_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RFC 9110 §15.6.4: whether the token was revoked is unknown, so it is not let in:
    503 with Retry-After (not a 401: the token may be fine), logged, nothing internal."""
    caplog.set_level(logging.DEBUG, logger="microweb")
    with refused_redis() as store:
        auth = hs_auth(store=store)
        reply = get(make_client(auth), auth.encode({"sub": "alice"}), 503)
    assert reply.headers["Retry-After"] == str(STORE_RETRY_AFTER)
    assert reply.json["detail"] == STORE_UNAVAILABLE
    assert "WWW-Authenticate" not in reply.headers
    assert "refused" not in reply.text.lower()
    [record] = [r for r in caplog.records if r.name == "microweb"]
    assert record.levelno == logging.WARNING and "GET /me" in record.getMessage()


def test_fail_open_accepts_a_verified_token_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="microweb")
    with refused_redis() as store:
        auth = hs_auth(store=store, fail_open=True)
        client = make_client(auth)
        assert get(client, auth.encode({"sub": "alice"}), 200).json["sub"] == "alice"
        # Only revocation is skipped: a bad signature or an expired token is still a 401.
        get(client, auth.encode({"sub": "alice"}) + "x", 401)
        get(client, auth.encode({"sub": "alice", "exp": NOW - 1}), 401)
    warnings = [r for r in caplog.records if r.name == "microweb"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "token accepted" in warnings[0].getMessage()


def test_a_revoke_that_cannot_be_stored_is_a_503_then_works_once_the_store_is_back(
    tmp_path: Path,
) -> None:
    """auth.revoke writes to the store: with the write lock held elsewhere, the logout is
    a 503 (the client knows to retry), the token still works; after the outage, revoked."""
    with locked_sqlite(tmp_path / "revoked.db") as locked:
        auth = hs_auth(store=locked.store)
        client = make_client(auth)
        token = auth.encode({"sub": "alice"})
        locked.lock()  # reads work (the revocation check), writes fail (revoke)
        reply = client.post("/logout", headers=_bearer(token), status=503)
        assert reply.headers["Retry-After"] == str(STORE_RETRY_AFTER)
        get(client, token, 200)
        locked.release()
        client.post("/logout", headers=_bearer(token), status=204)
        assert "revoked" in get(client, token, 401).headers["WWW-Authenticate"]


def test_the_revocation_check_recovers_after_a_redis_outage(
    redis_server: RedisServer, redis_url: str
) -> None:
    with RedisStore(redis_url) as store:
        auth = hs_auth(store=store)
        client = make_client(auth)
        token = auth.encode({"sub": "alice"})
        with redis_server.outage():
            get(client, token, 503)
        get(client, token, 200)


def test_fail_open_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="fail_open"):
        hs_auth(fail_open="yes")

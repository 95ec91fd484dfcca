"""Accounts: a login form with server-side sessions, and a JSON API with JWT bearer tokens.

One small site, both ways of recognising a user again (docs/sessions.md and
docs/authentication.md explain when to pick which):

- **the browser side** logs in with an HTML form and is then recognised by
  a cookie that holds only an opaque session id; the session itself lives in
  a SQLite file that every gunicorn worker shares, so logout revokes it
  everywhere, even if the browser (or a thief) keeps the cookie;
- **the API side** trades a username and password for a short-lived signed
  token (a JWT) and then sends it in ``Authorization: Bearer ...``; each
  endpoint names the scope it needs, and ``/api/logout`` revokes one token
  by its ``jti`` in the same SQLite file.

Run it from the repository root, on plain http for a demo:

    ACCOUNTS_DB=/tmp/accounts.db INSECURE_COOKIES=1 \\
    JWT_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') \\
        microweb run examples.accounts:app

then open http://127.0.0.1:8000/ (log in as alice / wonderland-alice), or:

    curl -s -X POST 127.0.0.1:8000/api/token -H 'Content-Type: application/json' \\
         -d '{"username": "alice", "password": "wonderland-alice"}'
    curl -i 127.0.0.1:8000/api/me -H "Authorization: Bearer $TOKEN"

The site
--------
    GET  /              "hello <user>" and a logout button, or a link to log in
    GET  /login         the login form
    POST /login         username, password (a form) -> 303 to /, new session id
    POST /logout        revokes the session server-side -> 303 to /

The API (JSON; errors as RFC 9457 problem details, bearer errors as RFC 6750 says)
-----------------------------------------------------------------------------------
    POST /api/token     {"username", "password", "scope"?} -> {"access_token",
                        "token_type": "Bearer", "expires_in", "scope"} (RFC 6749 §5.1);
                        wrong credentials: 400 {"error": "invalid_grant"} (§5.2)
    GET  /api/me        needs scope "profile"      -> {"user", "scope"}
    POST /api/notes     needs scope "notes:write"  {"text"} -> 201 {"id", "text"}
    POST /api/logout    any valid token            -> 204; that token is revoked

A request with no token gets 401 and ``WWW-Authenticate: Bearer realm=...``;
a bad, expired or revoked one 401 with ``error="invalid_token"``; a token
without the endpoint's scope 403 with ``error="insufficient_scope"``.

Configuration (environment)
---------------------------
- ``ACCOUNTS_DB``: the SQLite file holding sessions, revoked tokens and notes
  (default ``accounts.db``). One file, so all gunicorn workers on this
  machine agree on who is logged in.
- ``JWT_KEY``: the HS256 signing key, at least 32 bytes (RFC 7518 §3.2: the
  key must be as long as the hash). Without it a *published development key*
  is used, and a warning is logged: anyone can mint tokens with that one.
- ``INSECURE_COOKIES=1``: send the session cookie without ``Secure``, so a
  browser returns it over plain http (a demo on 127.0.0.1, the tests). By
  default the cookie is ``Secure``: a browser sends it over https only, and
  a login over plain http then appears not to stick. Never set it in
  production.
- ``ALLOWED_HOSTS`` (default ``127.0.0.1,localhost``), ``TRUSTED_PROXIES``
  (default ``127.0.0.1``), ``FORCE_HTTPS=1``: as in examples/secure_api.py.

What defends what
-----------------
- Passwords are stored as scrypt hashes with a per-user salt, compared in
  constant time; an unknown user costs the same scrypt as a known one, so
  the timing does not tell which usernames exist.
- Session fixation: ``req.session.rotate()`` at login gives the session a new
  id, so an id planted in the browser before login is worth nothing after.
- CSRF: `CrossOriginProtection` refuses POSTs that another site's page sent
  (``Sec-Fetch-Site``, then ``Origin``), the login form included (login
  CSRF: logging the victim into the attacker's account). Bearer-token
  requests pass it: a browser never attaches a bearer token by itself.
- The session cookie is ``HttpOnly`` (no script can read it), ``SameSite=Lax``
  and ``Secure`` (see ``INSECURE_COOKIES``).
- Tokens are short-lived (15 minutes), carry ``iss``/``aud`` that are checked,
  and are verified with HS256 only (an ``alg`` of ``none`` or RS256 is refused).
- NOTE: a real site also rate-limits POST /login and POST /api/token per
  client and per username (password guessing); it is left out here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
from html import escape
from typing import Any

from microweb import App, HTTPError, Request, Response, redirect
from microweb.auth import JWTAuth
from microweb.middleware import (
    CrossOriginProtection,
    HTTPSRedirect,
    ProxyFix,
    RequestID,
    SecurityHeaders,
    TrustedHost,
)
from microweb.sessions import ServerSessions
from microweb.stores import SQLiteStore, Store

log = logging.getLogger("microweb")

TOKEN_LIFETIME = 15 * 60  # seconds: a stolen token is worth this long at most
ISSUER = "accounts-example"  # `iss`: who minted the token
AUDIENCE = "accounts-api"  # `aud`: who the token is for (RFC 8725 §3.9)

# !!! DEVELOPMENT KEY: it is in a public repository, so anyone can sign tokens
# !!! with it. Set JWT_KEY (32+ random bytes) for anything but a demo.
DEV_JWT_KEY = "dev-only-accounts-example-key-do-not-deploy!"


# --- passwords: never stored, only their scrypt hashes --------------------------

# scrypt cost (RFC 7914): n=2**14, r=8 takes ~16 MiB and tens of milliseconds
# per guess, which is what makes a stolen hash table expensive to crack.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<hash hex>``: what a user table stores instead of a password."""
    salt = salt or secrets.token_bytes(16)
    # NOTE: "surrogatepass": JSON can carry a lone surrogate ("\ud800"), which
    # strict UTF-8 cannot encode; it must be a wrong password, not a 500.
    secret = password.encode("utf-8", "surrogatepass")
    digest = hashlib.scrypt(secret, salt=salt, dklen=32, **SCRYPT)
    # NOTE: a real table also records the cost (n, r, p), so it can be raised later.
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    candidate = hash_password(password, bytes.fromhex(salt)).rpartition("$")[2]
    # SECURITY: compare_digest takes the same time wherever the first difference is.
    return hmac.compare_digest(candidate, digest)


# The demo accounts: username -> (password hash, the scopes its tokens may carry).
# A real site keeps these rows in its database; the passwords below exist only
# to build the demo hashes and appear in no table.
USERS: dict[str, tuple[str, frozenset[str]]] = {
    "alice": (hash_password("wonderland-alice"), frozenset({"profile", "notes:write"})),
    "bob": (hash_password("builder-bob"), frozenset({"profile"})),
}
# SECURITY: checked when the username is unknown, so that a wrong username
# costs the same scrypt as a wrong password (no user enumeration by timing).
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def authenticate(username: Any, password: Any) -> str | None:
    """The username if the password is right, else None (whatever the types sent)."""
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    stored, _ = USERS.get(username, (DUMMY_HASH, frozenset()))
    if check_password(password, stored) and username in USERS:
        return username
    return None


# --- HTML: a few lines of it, escaped -------------------------------------------


def page(title: str, body: str, status: int = 200) -> Response:
    html = (
        "<!doctype html>\n<html lang=en><meta charset=utf-8>"
        f"<title>{escape(title)}</title>\n<h1>{escape(title)}</h1>\n{body}\n"
    )
    response = Response(html, status=status, content_type="text/html", charset="utf-8")
    # The page shows who is logged in: no shared cache may keep it.
    response.cache_control = "private, no-store"
    return response


LOGIN_FORM = """<form method=post action=/login>
<p><label>Username <input name=username autocomplete=username required></label>
<p><label>Password <input name=password type=password autocomplete=current-password required>
</label>
<p><button>Log in</button>
</form>"""


# --- the app ----------------------------------------------------------------------


def create_app(db_path: str | os.PathLike[str], jwt_key: str = DEV_JWT_KEY, **options: Any) -> App:
    """The accounts site, storing its sessions, revocations and notes in `db_path`.

    `options` are `build_app`'s (``secure_cookies``, ``allowed_hosts``, ...).
    """
    return build_app(SQLiteStore(os.fspath(db_path)), jwt_key, **options)


def build_app(
    store: Store,
    jwt_key: str = DEV_JWT_KEY,
    *,
    secure_cookies: bool = True,
    allowed_hosts: list[str] | None = None,
    trusted_proxies: list[str] | None = None,
    force_https: bool = False,
) -> App:
    """The accounts site on any `Store`: SQLite for one machine, Redis for several.

    examples/deploy/app.py builds it on a `RedisStore`, so that instances on
    several machines share sessions, revocations and notes.
    """
    # JWTAuth refuses a key under 32 bytes (RFC 7518 §3.2) here, at startup.
    auth = JWTAuth(jwt_key, algorithms=["HS256"], issuer=ISSUER, audience=AUDIENCE, store=store)
    app = App()

    # -- the site: a server-side session -------------------------------------------

    @app.get("/")
    def home(req: Request) -> Response:
        user = req.session.get("user")
        if user is None:
            return page("Accounts", '<p>You are not logged in. <a href="/login">Log in</a>.')
        return page(
            "Accounts",
            f"<p>hello {escape(user)}\n"
            "<form method=post action=/logout><button>Log out</button></form>",
        )

    @app.get("/login")
    def login_form(req: Request) -> Response:
        return page("Log in", LOGIN_FORM)

    @app.post("/login")
    def login(req: Request) -> Response:
        user = authenticate(req.form.get("username"), req.form.get("password"))
        if user is None:
            # NOTE: not 401, which must come with a WWW-Authenticate challenge
            # (RFC 9110 §15.5.2) that a form login has none of.
            return page("Log in", "<p>Wrong username or password.\n" + LOGIN_FORM, status=400)
        # SECURITY: a new session id at the moment of login (session fixation).
        req.session.rotate()
        req.session["user"] = user
        # RFC 9110 §15.4.4: 303 See Other, so that reloading does not re-POST.
        return redirect("/", status=303)

    @app.post("/logout")
    def logout(req: Request) -> Response:
        # Revoked in the store: the old cookie names a session that is gone.
        req.session.invalidate()
        return redirect("/", status=303)

    # -- the API: bearer tokens ----------------------------------------------------

    @app.post("/api/token")
    def token(req: Request) -> Response:
        data = req.json
        if not isinstance(data, dict):
            raise HTTPError(422, "The body must be a JSON object with username and password.")
        user = authenticate(data.get("username"), data.get("password"))
        if user is None:
            return token_error("invalid_grant", "Wrong username or password.")
        allowed = USERS[user][1]
        # A client may ask for fewer scopes than the user has (least privilege).
        requested = data.get("scope")
        if requested is None:
            granted = allowed
        elif isinstance(requested, str) and requested.split() and set(requested.split()) <= allowed:
            granted = frozenset(requested.split())
        else:
            return token_error("invalid_scope", f"Scopes available: {' '.join(sorted(allowed))}.")
        scope = " ".join(sorted(granted))
        access_token = auth.encode({"sub": user, "scope": scope}, expires_in=TOKEN_LIFETIME)
        response = Response.json(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "scope": scope,
            }
        )
        # RFC 6749 §5.1: a response carrying a token is never cached.
        response.cache_control = "no-store"
        return response

    @app.get("/api/me")
    @auth.required(scopes=["profile"])
    def me(req: Request) -> dict[str, Any]:
        return {"user": req.claims["sub"], "scope": req.claims["scope"]}

    @app.post("/api/notes")
    @auth.required(scopes=["notes:write"])
    def add_note(req: Request) -> Response:
        data = req.json
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise HTTPError(422, 'The body must be a JSON object {"text": "..."}.')
        user = req.claims["sub"]
        # incr is atomic across workers: two notes never get the same id.
        note_id = store.incr(f"accounts:notes:{user}:last-id")
        store.set(f"accounts:notes:{user}:{note_id}", data["text"])
        return Response.json({"id": note_id, "text": data["text"]}, status=201)

    @app.post("/api/logout")
    @auth.required()
    def api_logout(req: Request) -> None:
        # Until its `exp`, the token's id is on the revocation list every
        # worker checks; after that the signature check refuses it anyway.
        auth.revoke(req.claims["jti"], req.claims["exp"])

    # -- the stack (microweb.middleware.ORDER places the built-in ones) -------------

    app.use(ProxyFix, x_for=1, x_proto=1, trusted=trusted_proxies or ["127.0.0.1"])
    app.use(RequestID)
    app.use(SecurityHeaders)
    app.use(TrustedHost, allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost"])
    if force_https:
        app.use(HTTPSRedirect)
    # After TrustedHost in ORDER (it compares Origin with this request's own
    # scheme and host), and outside the sessions: a cross-site POST is refused
    # before the session is even loaded.
    app.use(CrossOriginProtection)
    app.use(
        ServerSessions,
        store=store,
        secure=secure_cookies,
        idle_timeout=30 * 60,  # seconds without a request
        max_age=8 * 60 * 60,  # seconds since login, however active
    )
    return app


def token_error(error: str, description: str) -> Response:
    """RFC 6749 §5.2: a token request refused, as the client libraries expect it."""
    response = Response.json({"error": error, "error_description": description}, status=400)
    response.cache_control = "no-store"
    return response


def setting(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def jwt_key_from_env() -> str:
    key = os.environ.get("JWT_KEY")
    if key is None:
        log.warning("JWT_KEY is not set: using the PUBLIC development key (demo only!)")
        return DEV_JWT_KEY
    return key


def app_from_env() -> App:
    """The app `microweb run examples.accounts:app` serves, configured from the environment."""
    return create_app(
        os.environ.get("ACCOUNTS_DB", "accounts.db"),
        jwt_key_from_env(),
        secure_cookies=os.environ.get("INSECURE_COOKIES") != "1",
        allowed_hosts=setting("ALLOWED_HOSTS", "127.0.0.1,localhost"),
        trusted_proxies=setting("TRUSTED_PROXIES", "127.0.0.1"),
        force_https=os.environ.get("FORCE_HTTPS") == "1",
    )


@functools.cache
def _app() -> App:
    return app_from_env()


def __getattr__(name: str) -> Any:
    # NOTE: PEP 562: `app` is built on first access (gunicorn's
    # "examples.accounts:app"), not at import, so that a module that imports
    # this one for `build_app` (examples/deploy/app.py) opens no SQLite file
    # and logs no development-key warning.
    if name == "app":
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

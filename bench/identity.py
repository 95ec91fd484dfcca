"""What identity costs per request: a cookie session read, an HS256 JWT verified.

    python bench/identity.py [--rounds N]

Both are ratios to the hello request of the same microweb app (median of
paired ratios, the pairs run back to back in shuffled order):

- **session**: ``GET /session`` through `CookieSessions`, with a valid
  signed cookie; the handler reads one value (HMAC check + JSON parse, no
  Set-Cookie since nothing changes);
- **jwt**: ``GET /jwt`` with ``Authorization: Bearer <HS256 token>`` on a
  handler decorated with ``@auth.required()`` (PyJWT decode + our checks).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import environ_template, time_calls
from representations import paired

from microweb import App, Request
from microweb.auth import JWTAuth
from microweb.sessions import CookieSessions

KEY = "k" * 32


def build() -> tuple[App, JWTAuth]:
    app = App()
    auth = JWTAuth(KEY)

    @app.get("/hello")
    def hello(req: Request) -> str:
        return "Hello, World!"

    @app.get("/session")
    def session(req: Request) -> Any:
        if "user" not in req.session:
            req.session["user"] = "alice"
        return {"user": req.session["user"]}

    @app.get("/jwt")
    @auth.required()
    def token(req: Request) -> Any:
        return {"user": req.claims["sub"]}

    app.use(CookieSessions, secret_keys=[KEY], secure=False)
    return app, auth


def session_cookie(app: App) -> str:
    """A real cookie, as the middleware issued it."""
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.update((k.lower(), v) for k, v in headers)

    environ = dict(environ_template("GET", "/session"), **{"wsgi.input": io.BytesIO()})
    b"".join(app(environ, start_response))
    return seen["set-cookie"].split(";", 1)[0]


def status_of(app: App, template: dict[str, Any]) -> str:
    seen: list[str] = []
    environ = dict(template, **{"wsgi.input": io.BytesIO()})
    b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    app, auth = build()
    hello = environ_template("GET", "/hello")
    with_cookie = dict(environ_template("GET", "/session"), HTTP_COOKIE=session_cookie(app))
    bearer = f"Bearer {auth.encode({'sub': 'alice'}, expires_in=3600)}"
    with_token = dict(environ_template("GET", "/jwt"), HTTP_AUTHORIZATION=bearer)
    for template in (hello, with_cookie, with_token):
        assert status_of(app, template) == "200 OK", template["PATH_INFO"]
    n = 2000
    print(f"{rounds} rounds; medians of paired ratios to GET /hello on the same app")
    for name, template in (("session", with_cookie), ("jwt", with_token)):
        ratio, cost = paired(
            lambda t=template: time_calls(app, t, b"", n),
            lambda: time_calls(app, hello, b"", n),
            rounds,
        )
        print(f"{name:8} {cost / 1000:7.2f} µs/request   {ratio:5.2f}x hello")


if __name__ == "__main__":
    main()

"""The two apps of the real-browser CORS test (test_cors_browser.py), for gunicorn.

- ``tests.cors_apps:page`` serves `PAGE`, whose script calls the API with
  ``fetch()`` and writes what it could read into ``<pre id="results">``.
  The API's address comes in the query string (``/?api=http://127.0.0.1:N``),
  so the page server can start first and tell the API its origin.
- ``tests.cors_apps:api()`` builds the API for the page origin in
  ``PAGE_ORIGIN``: the same small resource app mounted several times, each
  mount behind a different CORS configuration (see `api`). It runs with one
  worker, so ``GET /hits`` can list every request that reached a handler.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit

from microweb import App, HTTPError, Request, Response
from microweb.middleware.cors import CORS

TOKEN = "Bearer t0ken"
#: Every request that reached a handler, in this worker ("PUT /exact/items/7").
HITS: list[str] = []


def resource_app() -> App:
    """What each mount of the API serves."""
    app = App()

    def hit(req: Request) -> None:
        HITS.append(f"{req.method} {req.script_name}{req.path_info}")

    @app.get("/data")
    def data(req: Request) -> Response:
        hit(req)
        response = Response.json({"notes": ["milk"]})
        response.headers["X-Total-Count"] = "1"  # exposed by /exact only
        response.headers["X-Internal"] = "not for scripts"  # exposed by none
        return response

    @app.route("/items/{id:int}", methods=["GET", "PUT"])
    def item(req: Request, id: int) -> Any:
        hit(req)
        if req.method == "PUT" and req.headers.get("Authorization") != TOKEN:
            raise HTTPError(401)
        return {"id": id, "saved": req.json if req.method == "PUT" else None}

    @app.get("/me")
    def me(req: Request) -> Any:
        hit(req)
        return {"sid": req.cookies.get("sid")}

    @app.get("/slow")
    def slow(req: Request) -> Any:
        # The browser driver's premise: the DOM is dumped only after pending
        # fetches finish (virtual time stops while the network is busy).
        hit(req)
        time.sleep(1.0)
        return {"slow": True}

    return app


def api() -> App:
    """The API: one mount per CORS configuration the page tries."""
    page_origin = os.environ["PAGE_ORIGIN"]
    port = urlsplit(page_origin).port or 80
    other_port = port + 1 if port < 65535 else port - 1
    root = App()

    exact = resource_app()
    exact.use(
        CORS,
        allow_origins=[page_origin],
        allow_headers=["Authorization"],
        expose_headers=["X-Total-Count"],
        allow_credentials=True,
    )
    root.mount("/exact", exact)
    # `*`: anyone may read, but never with credentials (Fetch §3.3.5).
    root.mount("/star", CORS(resource_app(), allow_origins="*", allow_headers=["Authorization"]))
    # The exact origin, but no Access-Control-Allow-Credentials.
    root.mount("/nocreds", CORS(resource_app(), allow_origins=[page_origin]))
    # Origins that are not the page's: another port, another host, another scheme.
    lookalikes = {
        "/otherport": f"http://127.0.0.1:{other_port}",
        "/localhost": f"http://localhost:{port}",
        "/https": f"https://127.0.0.1:{port}",
    }
    for prefix, origin in lookalikes.items():
        root.mount(
            prefix,
            CORS(
                resource_app(),
                allow_origins=[origin],
                allow_headers=["Authorization"],
                allow_credentials=True,
            ),
        )

    @root.get("/hits")
    def hits(req: Request) -> Any:
        return {"hits": HITS}

    return root


PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><title>CORS in a browser</title></head>
<body>
<pre id="results"></pre>
<script>
"use strict";
const api = new URLSearchParams(location.search).get("api");
// Cookies ignore ports: the API on 127.0.0.1:<other port> gets this one
// whenever a fetch includes credentials.
document.cookie = "sid=s3cret; path=/; SameSite=Lax";
const put = (headers) => ({
  method: "PUT",
  headers: {"Content-Type": "application/json", ...headers},
  body: JSON.stringify({title: "milk"}),
});
const CASES = {
  allowed: ["/exact/data", {}],
  other_port: ["/otherport/data", {}],
  other_host: ["/localhost/data", {}],
  other_scheme: ["/https/data", {}],
  put_allowed: ["/exact/items/7", put({Authorization: "Bearer t0ken"})],
  put_other_port: ["/otherport/items/8", put({Authorization: "Bearer t0ken"})],
  put_header_not_allowed: ["/exact/items/9", put({"X-Not-Allowed": "1"})],
  credentials_exact: ["/exact/me", {credentials: "include"}],
  credentials_star: ["/star/me", {credentials: "include"}],
  anonymous_star: ["/star/me", {}],
  credentials_without_allow_credentials: ["/nocreds/me", {credentials: "include"}],
  anonymous_exact_origin: ["/nocreds/me", {}],
  slow: ["/exact/slow", {}],
};

async function attempt(path, init) {
  try {
    const response = await fetch(api + path, init);
    const headers = {};
    for (const name of ["Content-Type", "X-Total-Count", "X-Internal"]) {
      headers[name] = response.headers.get(name);
    }
    return {read: true, status: response.status, body: await response.json(), headers};
  } catch (error) {
    return {read: false, error: error.name};
  }
}

(async () => {
  const results = {};
  for (const [name, [path, init]] of Object.entries(CASES)) {
    results[name] = await attempt(path, init);
  }
  document.getElementById("results").textContent = JSON.stringify(results);
  document.title = "done";
})();
</script>
</body>
</html>
"""

page = App()


@page.get("/")
def index(req: Request) -> Response:
    return Response(text=PAGE, content_type="text/html", charset="utf-8")

"""The notes API behind the recommended middleware stack.

Run it from the repository root:

    ALLOWED_HOSTS=127.0.0.1,localhost CORS_ORIGINS=http://127.0.0.1:5173 \\
        microweb run examples.secure_api:app

and see the stack, in the order a request meets it:

    microweb routes examples.secure_api:app

Configuration comes from the environment, as it would in a deployment:

- ``NOTES_DB``: the SQLite file (default ``notes.db``);
- ``ALLOWED_HOSTS``: comma-separated Host values this API answers to
  (default ``127.0.0.1,localhost``); anything else is a 400;
- ``CORS_ORIGINS``: comma-separated origins whose pages may call the API
  from a browser (default: none, so no browser page may read it);
- ``TRUSTED_PROXIES``: addresses/CIDRs of the proxies in front (default
  ``127.0.0.1``: a proxy on this machine, like the nginx of the deployment
  recipe); ``X-Forwarded-For``/``-Proto`` are believed only from them;
- ``FORCE_HTTPS=1``: redirect plain http to https (308). Leave it off when
  serving plain http on 127.0.0.1.

See docs/middleware.md for what each middleware stops and why the order
is what it is; `microweb.middleware.ORDER` is where the order is declared.
"""

from __future__ import annotations

import os

from examples.notes import create_app
from microweb import App
from microweb.middleware import (
    CORS,
    HTTPSRedirect,
    ProxyFix,
    RequestID,
    SecurityHeaders,
    TrustedHost,
)


def setting(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def secure(app: App) -> App:
    """Add the recommended stack to `app` (wherever each call is, ORDER decides)."""
    # One proxy in front (nginx on this machine): believe one hop of
    # X-Forwarded-For and -Proto, and only from that proxy's address.
    app.use(ProxyFix, x_for=1, x_proto=1, trusted=setting("TRUSTED_PROXIES", "127.0.0.1"))
    app.use(RequestID)
    app.use(SecurityHeaders)
    app.use(TrustedHost, allowed_hosts=setting("ALLOWED_HOSTS", "127.0.0.1,localhost"))
    if os.environ.get("FORCE_HTTPS") == "1":
        app.use(HTTPSRedirect, exempt=("/healthz",))
    app.use(CORS, allow_origins=setting("CORS_ORIGINS", ""), allow_headers=["Authorization"])
    return app


app = secure(create_app(os.environ.get("NOTES_DB", "notes.db")))

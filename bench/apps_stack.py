"""microweb with its default middleware stack: the cost of the stack itself.

The same app as `apps_microweb`, with ``app.use`` of ProxyFix, RequestID,
SecurityHeaders, TrustedHost and CORS, configured as `examples/secure_api.py`
is. Compare its column with the microweb column: the ratio is what the
stack costs per request (issue 11 target: at most 2.5x on hello;
bench/gunicorn_cpu.py measures it under gunicorn).

HTTPSRedirect is left out: the bench's requests are plain http, so it
would answer every one with a 308 (when the request is https, which is
when an app behind it runs, it costs one dict lookup).
"""

from __future__ import annotations

import apps_microweb

from microweb import App
from microweb.middleware import CORS, ProxyFix, RequestID, SecurityHeaders, TrustedHost


def build(n_routes: int) -> App:
    app = apps_microweb.build(n_routes)
    app.use(ProxyFix, x_for=1, x_proto=1, trusted=["127.0.0.1"])
    app.use(RequestID)
    app.use(SecurityHeaders)
    app.use(TrustedHost, allowed_hosts=["localhost", "127.0.0.1"])
    app.use(CORS, allow_origins=["https://app.example"], allow_headers=["Authorization"])
    return app

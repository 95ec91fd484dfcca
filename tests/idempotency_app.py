"""The app test_middleware_idempotency.py serves with a real gunicorn (4 workers).

``tests.idempotency_app:server_app()`` is a microweb `App` behind
``Idempotency``, configured from the environment:

- ``IDEMPOTENCY_STORE``: ``sqlite:<path>`` or a ``redis://`` URL, the store
  every worker shares for the idempotency records;
- ``IDEMPOTENCY_RUNS``: an SQLite file where ``POST /orders`` counts its runs
  (``GET /runs`` reads the count), apart from the store under test;
- ``IDEMPOTENCY_GATE``: a FIFO. ``POST /orders`` counts its run, then reads
  one byte from it: the handler cannot finish before the test writes, so
  the test decides when the first request completes (no sleeps, and the
  other requests are certain to arrive while it is in flight).
"""

from __future__ import annotations

import os
from typing import Any

from microweb import App, Request, Response
from microweb.middleware.idempotency import Idempotency
from microweb.stores import SQLiteStore
from tests.store_specs import store_from_spec


def server_app() -> App:
    runs = SQLiteStore(os.environ["IDEMPOTENCY_RUNS"])
    gate = os.environ["IDEMPOTENCY_GATE"]
    app = App()

    @app.post("/orders")
    def create_order(req: Request) -> Any:
        run = runs.incr("runs")
        with open(gate, "rb", buffering=0) as fifo:  # one byte, not a buffer-full
            fifo.read(1)  # wait for the test to let this request finish
        return Response.json({"order": run, "received": req.json}, status=201)

    @app.get("/runs")
    def count(req: Request) -> Any:
        return {"runs": int(runs.get("runs") or 0)}

    app.use(Idempotency, store=store_from_spec(os.environ["IDEMPOTENCY_STORE"]))
    return app

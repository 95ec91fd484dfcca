"""A page that shows the server's time, pushed to it with Server-Sent Events.

Run it from the repository root with threaded workers, since every open
page holds one connection for as long as it stays open (docs/streaming.md):

    microweb run examples.clock_sse:app --worker-class gthread --threads 16

then open http://127.0.0.1:8000/, or watch the raw stream:

    curl -N localhost:8000/clock
    curl -N localhost:8000/clock -H 'Last-Event-ID: 41'    # resumes at 42

GET /       the page; its script opens ``new EventSource("/clock")``
GET /clock  one event per tick (CLOCK_INTERVAL seconds, default 1):

                id: 42
                event: tick
                data: 2025-01-01T12:00:00+00:00

The id counts ticks. When the connection drops, the browser reconnects by
itself after ``retry`` milliseconds and sends the last id it saw as
``Last-Event-ID``; the clock goes on counting from there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from microweb import App, Request, Response
from microweb.streaming import Event, EventStream, last_event_id

INTERVAL = float(os.environ.get("CLOCK_INTERVAL", "1"))
RECONNECT_MS = 2000

app = App()

PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Server clock</title>
<h1>Server time: <output id="time">connecting…</output></h1>
<p>Tick <output id="tick">-</output>, pushed by the server with Server-Sent Events.</p>
<script>
  const source = new EventSource("/clock");
  source.addEventListener("tick", (event) => {
    document.getElementById("time").textContent = event.data;
    document.getElementById("tick").textContent = event.lastEventId;
  });
  source.onerror = () => {
    // EventSource reconnects by itself, sending Last-Event-ID.
    document.getElementById("time").textContent = "reconnecting…";
  };
</script>
</html>
"""


@app.get("/")
def page(req: Request) -> Response:
    return Response(PAGE, content_type="text/html", charset="utf-8")


@app.get("/clock")
def clock(req: Request) -> EventStream:
    previous = last_event_id(req)
    first = int(previous) + 1 if previous and previous.isdigit() else 1
    return EventStream(ticks(first), retry=RECONNECT_MS)


def ticks(tick: int) -> Iterator[Event]:
    """One event now, then one per INTERVAL, until the client goes away.

    NOTE: the sleep blocks this worker thread only (gthread); when the
    client has gone, the next write fails and the server closes this
    generator, so the loop ends at the ``yield`` it is waiting on.
    """
    while True:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        yield {"id": tick, "event": "tick", "data": now}
        tick += 1
        time.sleep(INTERVAL)

"""The smallest microweb app.

Run it (from the repository root) and open http://127.0.0.1:8000/:

    microweb run examples.hello:app
"""

from microweb import App

app = App()


@app.get("/")
def hello(req):
    return "Hello, World!"  # a str becomes a text/plain; charset=utf-8 response

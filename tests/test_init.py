"""microweb/__init__.py: the public names, and what ``import microweb`` loads.

A gunicorn worker holds what its app imported, in every worker: optional
features (uploads, JWT, stores, compression, middleware) load on first use,
so that ``import microweb`` costs only what every app needs (bench/rss.py
measures a worker's peak memory).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import microweb

LAZY_LOADED = [
    *("jwt", "multipart", "sqlite3", "redis", "brotli", "wsproto"),
    *("microweb.middleware", "microweb.stores", "microweb.uploads", "microweb.debug_page"),
    "webob.exc",  # WebOb's 1,200 lines of HTTP exceptions: loaded by apps that raise them
    "dataclasses",  # FormLimits is the only dataclass an app meets: loaded with the first form
]


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def test_import_microweb_loads_no_optional_feature() -> None:
    loaded = modules_after("import microweb")
    assert "microweb" in loaded and "webob" in loaded
    assert sorted(set(LAZY_LOADED) & loaded) == []


@pytest.mark.parametrize(
    ("code", "module"),
    [
        pytest.param("import microweb.auth", "jwt", id="auth-loads-pyjwt"),
        pytest.param("microweb.stores.SQLiteStore", "sqlite3", id="sqlite-store"),
        pytest.param("microweb.stores.default_store", "microweb.stores", id="default-store"),
    ],
)
def test_a_feature_loads_on_first_use(code: str, module: str) -> None:
    """The lazy names still resolve; using one loads what it needs."""
    statement = code if code.startswith("import") else f"import microweb, microweb.stores\n{code}"
    assert module in modules_after(f"import microweb\n{statement}")


def test_lazy_public_names_resolve() -> None:
    from microweb import EventStream, negotiate
    from microweb.streaming import EventStream as Direct

    assert EventStream is Direct
    assert negotiate is microweb.negotiation.negotiate
    assert set(microweb.__all__) <= set(dir(microweb)) | {"EventStream", "negotiate"}
    with pytest.raises(AttributeError, match="no_such_name"):
        microweb.no_such_name  # noqa: B018


def test_a_form_loads_the_multipart_parser_on_first_use() -> None:
    code = """
import io, microweb
from microweb.testing import Client
import sys
app = microweb.App()

@app.post("/")
def form(req):
    return dict(req.form)

assert "multipart" not in sys.modules
body = b'--b\\r\\nContent-Disposition: form-data; name="a"\\r\\n\\r\\n1\\r\\n--b--\\r\\n'
Client(app).post("/", body, content_type="multipart/form-data; boundary=b")
"""
    assert "multipart" in modules_after(code)

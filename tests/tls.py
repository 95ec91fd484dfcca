"""A throwaway certificate authority for the HTTPS tests (trustme).

`TLS` holds a CA made for this test session, a certificate for 127.0.0.1
and localhost signed by it, the files gunicorn's ``--certfile/--keyfile``
read, and an `ssl.SSLContext` that trusts that CA and nothing else: the
clients verify the server's certificate as they would in production
(no ``verify=False``), without any real CA involved.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TLS:
    certfile: Path
    keyfile: Path
    context: ssl.SSLContext

    @property
    def args(self) -> tuple[str, ...]:
        """gunicorn's options to serve HTTPS with this certificate."""
        return ("--certfile", str(self.certfile), "--keyfile", str(self.keyfile))


def make_tls(directory: Path) -> TLS:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    # The server sends its certificate and the chain up to (not including) the CA.
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return TLS(certfile, keyfile, context)

"""Certificates for the TLS tests: a CA the test makes, and files for servers and clients.

pki = Pki.make(tmp_path)             # CA + server cert for 127.0.0.1/localhost
pki.ca, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key   # paths
pki.other_ca                         # a second, unrelated CA (must be refused)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str
    rogue_cert: str
    """A client certificate signed by ``other_ca`` (not trusted by the servers)."""
    rogue_key: str

    @classmethod
    def make(cls, directory: Path, client: str = "order-service") -> Pki:
        ca = trustme.CA(organization_name="servicewire test CA")
        other = trustme.CA(organization_name="somebody else")
        server = ca.issue_cert("127.0.0.1", "localhost")
        client_cert = ca.issue_cert(f"{client}.services.test", common_name=client)
        rogue = other.issue_cert(f"{client}.services.test", common_name=client)
        paths: dict[str, str] = {}
        for name, blob in (
            ("ca", ca.cert_pem),
            ("other_ca", other.cert_pem),
            ("server_cert", server.cert_chain_pems[0]),
            ("server_key", server.private_key_pem),
            ("client_cert", client_cert.cert_chain_pems[0]),
            ("client_key", client_cert.private_key_pem),
            ("rogue_cert", rogue.cert_chain_pems[0]),
            ("rogue_key", rogue.private_key_pem),
        ):
            path = directory / f"{name}.pem"
            blob.write_to_path(str(path))
            paths[name] = str(path)
        return cls(**paths)

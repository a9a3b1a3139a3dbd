"""TLS settings shared by every transport and client: one way to say ca, cert, key, verify.

The same option names work in every URL's query (NATS, PostgreSQL, MariaDB) and as
keyword arguments (REST and gRPC clients and servers)::

    nats://app:secret@broker:4222?tls_ca=/etc/ca.pem                 # TLS, verified
    postgresql://app@db:5432/orders?tls_ca=/etc/ca.pem&tls_cert=c.pem&tls_key=k.pem

    config = TLSConfig.from_query({"tls_ca": "/etc/ca.pem"})
    ctx = config.client_context()      # ssl.SSLContext: CERT_REQUIRED, hostname checked
    server = TLSConfig(cert="srv.pem", key="srv.key", ca="ca.pem", require_client_cert=True)
    ctx = server.server_context()      # mutual TLS: clients must present a cert from ca

==================  ===========================================================
option              meaning
==================  ===========================================================
``tls``             ``true``: use TLS with the system's CAs (implied by any other)
``tls_ca``          PEM file of the CA(s) that sign the peer's certificate
``tls_cert``        PEM file of our own certificate (client cert for mutual TLS)
``tls_key``         PEM file of its private key
``tls_server_name`` host name to check in the server certificate (default: the host)
``tls_verify``      ``false`` turns verification off: refused unless also
                    ``tls_insecure=yes-i-know``, and then logged as a warning
==================  ===========================================================

Why so strict: a TLS connection that silently accepts any certificate protects against
nobody, and a misspelt option that quietly leaves a connection in plaintext is worse
than an error. So an unknown ``tls_*`` option, a missing file or a ``tls_verify=false``
without its acknowledgement raises :class:`TLSConfigError`; nothing ever falls back.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from servicewire.errors import ServicewireError

log = logging.getLogger("servicewire.security.tls")

TLS_OPTIONS = frozenset(
    {"tls", "tls_ca", "tls_cert", "tls_key", "tls_server_name", "tls_verify", "tls_insecure"}
)
"""The query options :meth:`TLSConfig.from_query` reads (transports accept them all)."""

_INSECURE_ACK = "yes-i-know"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class TLSConfigError(ServicewireError, ValueError):
    """TLS options that are contradictory, incomplete or name files that do not exist."""


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise TLSConfigError(f"{name}={value!r}: use true or false")


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Where the TLS material is and how strictly to check the peer."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    verify: bool = True
    require_client_cert: bool = False
    """Server side: demand a client certificate signed by ``ca`` (mutual TLS)."""

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TLSConfigError("tls_cert and tls_key go together: give both or neither")
        if self.require_client_cert and self.ca is None:
            raise TLSConfigError("mutual TLS needs tls_ca: the CA that signs client certificates")
        for label, path in (("tls_ca", self.ca), ("tls_cert", self.cert), ("tls_key", self.key)):
            if path is not None and not Path(path).is_file():
                raise TLSConfigError(f"{label}: no such file {path!r}")

    @classmethod
    def from_query(
        cls, query: Mapping[str, str], *, secure_scheme: bool = False
    ) -> TLSConfig | None:
        """The TLS settings in a URL's query, or ``None`` for a plaintext connection.

        ``secure_scheme`` is true for schemes that mean TLS by themselves (``tls://``,
        ``https://``): then TLS is on even without options, and ``tls=false`` is refused.
        """
        given = {k: v for k, v in query.items() if k.startswith("tls")}
        unknown = set(given) - TLS_OPTIONS
        if unknown:
            raise TLSConfigError(
                f"unknown TLS option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(TLS_OPTIONS))}"
            )
        wanted = secure_scheme or bool(set(given) - {"tls"})
        if "tls" in given:
            on = _flag("tls", given["tls"])
            if not on and (secure_scheme or len(given) > 1):
                raise TLSConfigError("tls=false contradicts the scheme or the other tls_* options")
            wanted = wanted or on
        if not wanted:
            return None
        verify = _flag("tls_verify", given["tls_verify"]) if "tls_verify" in given else True
        if not verify and given.get("tls_insecure") != _INSECURE_ACK:
            raise TLSConfigError(
                "tls_verify=false accepts any certificate (anyone can impersonate the "
                f"server); add tls_insecure={_INSECURE_ACK} if that is really meant"
            )
        return cls(
            ca=given.get("tls_ca") or None,
            cert=given.get("tls_cert") or None,
            key=given.get("tls_key") or None,
            server_name=given.get("tls_server_name") or None,
            verify=verify,
        )

    def client_context(self) -> ssl.SSLContext:
        """A client context: the peer's certificate and host name checked unless told not to."""
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
            if self.cert is not None:
                ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"cannot load TLS material: {exc}") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            log.warning("TLS certificate verification is OFF (tls_verify=false)")
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """A server context with our certificate; client certificates required if asked."""
        if self.cert is None or self.key is None:
            raise TLSConfigError("a TLS server needs tls_cert and tls_key")
        try:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca)
            ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"cannot load TLS material: {exc}") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_NONE
        return ctx

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """``(ca, cert, key)`` file contents as bytes (gRPC wants PEM bytes, not paths)."""

        def load(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return load(self.ca), load(self.cert), load(self.key)


def driver_options(
    config: TLSConfig, names: Mapping[str, str], insecure: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``config`` as a driver's own URL options, for drivers that read TLS from the URL.

    ``names`` maps ``ca``/``cert``/``key`` to the driver's option names; ``insecure``
    are the options that turn its verification off (only used with ``verify=False``).
    """
    pairs = [
        (names[field], value)
        for field, value in (("ca", config.ca), ("cert", config.cert), ("key", config.key))
        if value is not None
    ]
    if not config.verify:
        log.warning("TLS certificate verification is OFF (tls_verify=false)")
        pairs.extend(insecure)
    return pairs


def split_tls_options(query: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(tls options, the rest)`` of a parsed query."""
    tls = {k: v for k, v in query.items() if k.startswith("tls")}
    rest = {k: v for k, v in query.items() if not k.startswith("tls")}
    return tls, rest


__all__ = ["TLS_OPTIONS", "TLSConfig", "TLSConfigError", "driver_options", "split_tls_options"]

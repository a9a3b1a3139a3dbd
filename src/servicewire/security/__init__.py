"""Security: TLS everywhere, service identity, authorization, message signatures.

    from servicewire.security import AccessPolicy, TLSConfig, TokenIssuer, TokenVerifier

:mod:`~.tls` (one set of TLS options for every connection), :mod:`~.identity` (signed
service tokens, mutual-TLS identities), :mod:`~.authorization` (which service may call
which operation), :mod:`~.signing` (message signatures and key rings).
"""

from servicewire.security.authorization import ANY_SERVICE, AccessPolicy, PermissionDeniedError
from servicewire.security.identity import (
    AuthenticationError,
    Identity,
    MessageAuthenticity,
    TokenIssuer,
    TokenVerifier,
    bearer_token,
    identity_from_common_name,
)
from servicewire.security.signing import Ed25519KeyRing, KeyRing, SignatureError
from servicewire.security.tls import TLSConfig, TLSConfigError

__all__ = [
    "ANY_SERVICE",
    "AccessPolicy",
    "AuthenticationError",
    "Ed25519KeyRing",
    "Identity",
    "KeyRing",
    "MessageAuthenticity",
    "PermissionDeniedError",
    "SignatureError",
    "TLSConfig",
    "TLSConfigError",
    "TokenIssuer",
    "TokenVerifier",
    "bearer_token",
    "identity_from_common_name",
]

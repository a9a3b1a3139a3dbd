"""URL helpers: redaction of credentials for logs and errors.

>>> redact("amqp://guest:secret@127.0.0.1:5672/vhost")
'amqp://guest:***@127.0.0.1:5672/vhost'
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pwd|token|secret|key)=)[^&]*")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def redact(url: str) -> str:
    """Return ``url`` with any password or token replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\g<scheme>\g<user>:***@", url)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username or ''}:***@{host}"
    query = _SECRET_QUERY.sub(r"\1***", "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact every URL-embedded password found anywhere in ``text``."""
    text = _USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)

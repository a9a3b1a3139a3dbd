"""Find what to document from a ``MODULE:ATTR`` string.

``ATTR`` (dotted attributes allowed) may be an object with ``channel_uses()`` (a
:class:`~servicewire.service.service.Service`), a plain list of :class:`ChannelUse`, or a
function taking no arguments that returns either (or a tuple whose first item is
one, like FTGO's ``create_*_service`` factories bound with ``functools.partial``)::

    uses, title, version = load_uses("ftgo.order.docs:service")
"""

from __future__ import annotations

import importlib
from typing import Any

from servicewire.messaging.channels import ChannelUse


class TargetError(ValueError):
    """A ``MODULE:ATTR`` target cannot be imported or is not something to document."""


def import_target(spec: str) -> Any:
    """The object ``MODULE:ATTR`` names."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"target {spec!r} must look like MODULE:ATTR")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _uses_of(obj: Any) -> list[ChannelUse] | None:
    if hasattr(obj, "channel_uses"):
        return list(obj.channel_uses())
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(u, ChannelUse) for u in obj):
        return list(obj)
    if isinstance(obj, tuple) and obj and hasattr(obj[0], "channel_uses"):
        return list(obj[0].channel_uses())
    return None


def load_uses(spec: str) -> tuple[list[ChannelUse], str, str | None]:
    """(channel uses, a title, a version if the object declares one) for ``spec``."""
    obj = import_target(spec)
    uses = _uses_of(obj)
    if uses is None and callable(obj) and not isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as exc:
            raise TargetError(
                f"{spec} needs arguments ({exc}); point at an object instead"
            ) from None
        uses = _uses_of(obj)
    if uses is None:
        raise TargetError(
            f"{spec} is {type(obj).__name__}: expected an object with channel_uses(), "
            "a list of ChannelUse, or a function returning one"
        )
    holder = obj[0] if isinstance(obj, tuple) and obj and hasattr(obj[0], "channel_uses") else obj
    title = getattr(holder, "title", None) or getattr(holder, "name", None)
    version = getattr(holder, "version", None)
    return (
        uses,
        str(title) if isinstance(title, str) else spec.rpartition(":")[2],
        str(version) if isinstance(version, str) else None,
    )

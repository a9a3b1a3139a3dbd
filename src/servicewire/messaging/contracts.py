"""Typed contracts: named, versioned message types on Pydantic v2 models.

A contract has a stable wire name (never the Python class path), a semantic version,
a kind (command, event, reply, document) and, for commands and events, a default
channel. Declare them with class keywords::

    class CreateTicket(Command, name="ftgo.kitchen.CreateTicket", version="1.0.0",
                       channel="kitchen-service", key="order_id"):
        order_id: str
        items: list[str] = []

    class TicketCreated(SuccessReply, name="ftgo.kitchen.TicketCreated", version="1.0.0"):
        ticket_id: str

``register=False`` keeps a class out of :data:`default_registry` (for example an older
version of a contract kept to read or test old messages; add it to a registry of its
own). ``key`` names the field whose value becomes the message's partition key, so all
messages about one order are handled in order. Readers are tolerant: unknown fields
are ignored and missing optional fields take their defaults. No text anywhere in a
contract may hold NUL or an unpaired UTF-16 surrogate (:mod:`~.text`): a payload
carrying one does not decode.

Every concrete contract is registered in :data:`default_registry`; a registry resolves
``(wire name, MAJOR)`` to a class, so a reader on 1.0 accepts 1.7 messages and refuses
2.0 ones with :class:`~servicewire.errors.UnsupportedVersionError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import ConfigDict

from servicewire.errors import DuplicateContractError, UnknownContractError, UnsupportedVersionError
from servicewire.messaging.message import MessageKind
from servicewire.messaging.text import TextSafeModel
from servicewire.messaging.versioning import SemVer

__all__ = [
    "Command",
    "Contract",
    "ContractRegistry",
    "Document",
    "Event",
    "FailureReply",
    "Reply",
    "SuccessReply",
    "default_registry",
]


class Contract(TextSafeModel):
    """Base of every message contract. Subclass a kind (Command, Event, ...), not this.

    A :class:`~servicewire.messaging.text.TextSafeModel`: no text in a contract may
    hold NUL or an unpaired surrogate, so a codec refuses such a payload
    (``DecodeError``, and the pipeline dead-letters the message at once).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Filled by __init_subclass__ from the class keywords.
    __contract_name__: ClassVar[str] = ""
    __contract_version__: ClassVar[SemVer] = SemVer(1, 0, 0)
    __contract_kind__: ClassVar[MessageKind] = MessageKind.DOCUMENT
    __contract_channel__: ClassVar[str | None] = None
    __contract_key__: ClassVar[str | None] = None
    __contract_abstract__: ClassVar[bool] = True
    __contract_autoregister__: ClassVar[bool] = True

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        version: str | None = None,
        channel: str | None = None,
        key: str | None = None,
        abstract: bool = False,
        register: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.__contract_abstract__ = abstract or name is None
        cls.__contract_autoregister__ = register
        if name is not None:
            cls.__contract_name__ = name
        if version is not None:
            cls.__contract_version__ = SemVer.parse(version)
        if channel is not None:
            cls.__contract_channel__ = channel
        if key is not None:
            cls.__contract_key__ = key

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Registered after Pydantic has built the fields, so the registry sees a
        # complete class. A subclass without a name is an abstract base.
        if not cls.__contract_abstract__:
            key = cls.__contract_key__
            if key is not None and key not in cls.model_fields:
                raise TypeError(f"{cls.__name__}: partition key field {key!r} is not a field")
            if cls.__contract_autoregister__:
                default_registry.register(cls)

    # Introspection ------------------------------------------------------------------------

    @classmethod
    def contract_name(cls) -> str:
        """The stable wire name, e.g. ``ftgo.order.CreateOrder``."""
        return cls.__contract_name__

    @classmethod
    def contract_version(cls) -> SemVer:
        return cls.__contract_version__

    @classmethod
    def contract_kind(cls) -> MessageKind:
        return cls.__contract_kind__

    @classmethod
    def default_channel(cls) -> str | None:
        return cls.__contract_channel__

    def partition_key(self) -> str | None:
        """The value of the field named by ``key=``, as a string, or ``None``."""
        key = self.__contract_key__
        if key is None:
            return None
        value = getattr(self, key)
        return None if value is None else str(value)


class Document(Contract, abstract=True):
    """A message that carries data only (the literature's document message)."""

    __contract_kind__: ClassVar[MessageKind] = MessageKind.DOCUMENT


class Command(Contract, abstract=True):
    """A request to perform an action, sent point to point to one service."""

    __contract_kind__: ClassVar[MessageKind] = MessageKind.COMMAND


class Event(Contract, abstract=True):
    """A notification that something happened, published to any subscriber."""

    __contract_kind__: ClassVar[MessageKind] = MessageKind.EVENT


class Reply(Contract, abstract=True):
    """An answer to a command. Subclass :class:`SuccessReply` or :class:`FailureReply`."""

    __contract_kind__: ClassVar[MessageKind] = MessageKind.REPLY
    __reply_success__: ClassVar[bool] = True

    @classmethod
    def is_success(cls) -> bool:
        return cls.__reply_success__


class SuccessReply(Reply, abstract=True):
    """The command succeeded."""

    __reply_success__: ClassVar[bool] = True


class FailureReply(Reply, abstract=True):
    """The command failed; ``reason`` says why in words a caller can act on."""

    __reply_success__: ClassVar[bool] = False
    reason: str = ""


class ContractRegistry:
    """Resolves ``(wire name, MAJOR version)`` to a contract class.

    registry = ContractRegistry()
    registry.register(CreateTicket)
    registry.resolve("ftgo.kitchen.CreateTicket", "1.3.0")   # -> CreateTicket (1.0.0)
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], type[Contract]] = {}
        self._lock = threading.Lock()

    def register(self, cls: type[Contract]) -> type[Contract]:
        """Add ``cls``; a different class with the same name and MAJOR is an error.

        Re-registering a class of the same module and qualified name replaces it
        (module reloads, tests that redefine a contract).
        """
        name = cls.contract_name()
        if not name:
            raise TypeError(f"{cls.__name__} has no wire name; declare it with name=...")
        key = (name, cls.contract_version().major)
        with self._lock:
            existing = self._by_key.get(key)
            if existing is not None and existing is not cls:
                same = (existing.__module__, existing.__qualname__) == (
                    cls.__module__,
                    cls.__qualname__,
                )
                if not same:
                    raise DuplicateContractError(
                        f"{name!r} major {key[1]} is already "
                        f"{existing.__module__}.{existing.__qualname__}; "
                        f"cannot also be {cls.__module__}.{cls.__qualname__}"
                    )
            self._by_key[key] = cls
        return cls

    def resolve(self, name: str, version: str | SemVer | None = None) -> type[Contract]:
        """The class for ``name`` in the MAJOR of ``version`` (latest major when ``None``).

        Raises :class:`UnknownContractError` or :class:`UnsupportedVersionError`.
        """
        if version is None or version == "":
            majors = self.versions(name)
            if not majors:
                raise UnknownContractError(name)
            return self._by_key[(name, majors[-1].major)]
        try:
            semver = version if isinstance(version, SemVer) else SemVer.parse(version)
        except ValueError:
            supported = [str(v) for v in self.versions(name)]
            if not supported:
                raise UnknownContractError(name, str(version)) from None
            raise UnsupportedVersionError(name, str(version), supported) from None
        cls = self._by_key.get((name, semver.major))
        if cls is None:
            supported = [str(v) for v in self.versions(name)]
            if not supported:
                raise UnknownContractError(name, str(semver))
            raise UnsupportedVersionError(name, str(semver), supported)
        return cls

    def versions(self, name: str) -> list[SemVer]:
        """The registered versions of ``name``, one per MAJOR, ascending."""
        return sorted(c.contract_version() for (n, _), c in self._by_key.items() if n == name)

    def __contains__(self, name: object) -> bool:
        return any(n == name for n, _ in self._by_key)

    def __iter__(self) -> Iterator[type[Contract]]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

    def subset(self, classes: list[type[Contract]]) -> ContractRegistry:
        """A new registry holding only ``classes`` (a service's own view)."""
        reg = ContractRegistry()
        for cls in classes:
            reg.register(cls)
        return reg


default_registry = ContractRegistry()
"""Every concrete contract class registers itself here when it is defined."""

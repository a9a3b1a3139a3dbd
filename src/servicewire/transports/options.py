"""One way to read a transport URL's query string: typed options, checked, nothing ignored.

Each broker declares its options as a frozen dataclass that subclasses
:class:`TransportOptions`. A field is an option: its type says how the text converts
(``int``, ``float``, ``bool``, ``bool | None`` with ``auto``, ``str``, ``str | None``,
a ``Literal`` of strings or an :class:`~enum.Enum`), its default applies when the URL
does not set it, and :func:`option` adds a range::

    @dataclass(frozen=True, slots=True)
    class PigeonOptions(TransportOptions):
        broker: ClassVar[str] = "pigeon"
        shards: int = option(16, at_least=1, at_most=1024)
        timeout: float = option(10.0, above=0)
        mode: Literal["fast", "safe"] = "safe"

    parsed = PigeonOptions.parse("pigeon://h:1/?shards=8&tls_ca=/etc/ca.pem")
    parsed.options.shards          # 8
    parsed.tls                     # TLSConfig(ca='/etc/ca.pem', ...): the shared tls_* keys
    PigeonOptions.parse("pigeon://u:pw@h:1/?shard=8")
    # TransportError: pigeon URL 'pigeon://u:***@h:1/?shard=8': unknown option 'shard';
    # accepted: mode, shards, timeout, tls, tls_ca, tls_cert, ...

Why unknown keys are refused rather than ignored or handed on: a misspelt option that
silently keeps its default (``delivery_limt=5``) is a bug found in production. Keys the
broker's client library reads itself are accepted only when the subclass names them in
:attr:`TransportOptions.driver_keys`; they come back verbatim in :attr:`Parsed.driver`.

Errors are :class:`~servicewire.errors.TransportError`; the URL in them is redacted
(:func:`servicewire.urls.redact`) and an unknown key is named without its value.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar
from urllib.parse import SplitResult, parse_qsl, urlsplit

from servicewire.errors import TransportError
from servicewire.security.tls import TLS_OPTIONS, TLSConfig, TLSConfigError
from servicewire.urls import redact

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_RANGE = "servicewire.range"
_IN_QUERY = "servicewire.in_query"


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds of a numeric option; ``None`` leaves that side open."""

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None

    def problem(self, value: float) -> str | None:
        if self.at_least is not None and value < self.at_least:
            return f"must be at least {self.at_least:g}"
        if self.above is not None and value <= self.above:
            return f"must be more than {self.above:g}"
        if self.at_most is not None and value > self.at_most:
            return f"must be at most {self.at_most:g}"
        return None


def option(
    default: Any,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
) -> Any:
    """A numeric option with a range: ``shards: int = option(16, at_least=1, at_most=1024)``."""
    return field(default=default, metadata={_RANGE: Range(at_least, above, at_most)})


INTERNAL: Mapping[str, Any] = MappingProxyType({_IN_QUERY: False})
"""Field metadata of a value the parser fills from the rest of the URL (servers, a
client URL ...): not settable from the query string, so not an accepted key::

    servers: list[str] = field(default_factory=list, metadata=INTERNAL)
"""


OptionsT = TypeVar("OptionsT", bound="TransportOptions")


@dataclass(frozen=True, slots=True)
class Parsed(Generic[OptionsT]):
    """What :meth:`TransportOptions.parse` read from one URL."""

    options: OptionsT
    tls: TLSConfig | None
    """The shared ``tls_*`` options (:mod:`servicewire.security.tls`), or ``None``: plaintext."""
    driver: list[tuple[str, str]]
    """The client library's own keys (:attr:`TransportOptions.driver_keys`), in URL order."""
    parts: SplitResult
    """The URL split, for the parts outside the query (host, path ...)."""


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Base of each broker's options. Subclass as a frozen dataclass (see the module)."""

    broker: ClassVar[str] = "transport"
    """The broker's name in error messages (``amqp``, ``redis`` ...)."""
    driver_keys: ClassVar[frozenset[str]] = frozenset()
    """Query keys the client library reads itself: accepted and passed on untouched."""
    supports_tls: ClassVar[bool] = True
    """Whether the shared ``tls_*`` keys apply (a transport without TLS refuses them)."""

    @classmethod
    def parse(cls, url: str, *, secure_scheme: bool = False, **given: Any) -> Parsed[Self]:
        """Read ``url``'s query into options. ``given`` fills :data:`INTERNAL` fields.

        ``secure_scheme``: the scheme means TLS by itself (``tls://``), so TLS is on
        even without ``tls_*`` options.
        """
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
        except ValueError as exc:
            raise cls.error(url, str(exc)) from None
        settable = cls.query_fields()
        values: dict[str, Any] = {}
        tls_query: dict[str, str] = {}
        driver: list[tuple[str, str]] = []
        for key, text in query:
            if key.startswith("tls") and cls.supports_tls:
                tls_query[key] = text  # TLSConfig refuses an unknown tls_* key itself
            elif key in cls.driver_keys:
                driver.append((key, text))
            elif key in settable:
                values[key] = _convert(cls, url, settable[key], key, text)
            else:
                raise cls.error(
                    url, f"unknown option {key!r}; accepted: {', '.join(cls.accepted_keys())}"
                )
        try:
            tls = TLSConfig.from_query(tls_query, secure_scheme=secure_scheme)
        except TLSConfigError as exc:
            raise cls.error(url, f"TLS options: {exc}") from None
        options = cls(**given, **values)
        problems = options.problems()
        if problems:
            raise cls.error(url, "; ".join(problems))
        return Parsed(options, tls, driver, parts)

    def problems(self) -> list[str]:
        """What is wrong across options (one field's range is checked already).

        Override to add checks such as ``member_timeout must exceed member_interval``.
        """
        return []

    @classmethod
    def query_fields(cls) -> dict[str, Field[Any]]:
        """The fields a query key may set, by name."""
        return {f.name: f for f in fields(cls) if f.metadata.get(_IN_QUERY, True)}

    @classmethod
    def accepted_keys(cls) -> list[str]:
        """Every key the query may hold, sorted: options, driver keys and ``tls_*``."""
        tls = TLS_OPTIONS if cls.supports_tls else frozenset()
        return sorted(set(cls.query_fields()) | cls.driver_keys | tls)

    @classmethod
    def error(cls, url: str, problem: str) -> TransportError:
        """A :class:`TransportError` about ``url`` (redacted) and ``problem``."""
        return TransportError(f"{cls.broker} URL {redact(url)!r}: {problem}")


# Conversion -----------------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hint(cls: type, name: str) -> Any:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints[name]


def _convert(cls: type[TransportOptions], url: str, spec: Field[Any], key: str, text: str) -> Any:
    hint = _hint(cls, spec.name)
    try:
        value = _parser(hint)(text)
        bounds = spec.metadata.get(_RANGE)
        if bounds is not None and (problem := bounds.problem(value)) is not None:
            raise ValueError(problem)
    except ValueError as exc:
        raise cls.error(url, f"option {key}={text!r}: {exc}") from None
    return value


def _parser(hint: Any) -> Callable[[str], Any]:
    optional = _optional_of(hint)
    if optional is bool:
        return _tristate
    if optional is str:
        return lambda text: text or None
    if hint is int:
        return _integer
    if hint is float:
        return _number
    if hint is bool:
        return _flag
    if hint is str:
        return str
    if typing.get_origin(hint) is Literal:
        return _choice(tuple(str(a) for a in typing.get_args(hint)))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _member(hint)
    raise TypeError(f"an option cannot have type {hint!r}")


def _optional_of(hint: Any) -> Any:
    """``X`` for ``X | None``, else ``None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("needs an integer") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("needs a number") from None
    if not math.isfinite(value):
        raise ValueError("needs a finite number")
    return value


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("needs true or false")


def _tristate(text: str) -> bool | None:
    if text.strip().lower() in ("", "auto"):
        return None
    try:
        return _flag(text)
    except ValueError:
        raise ValueError("needs true, false or auto") from None


def _choice(allowed: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"use one of {', '.join(allowed)}")
        return text

    return parse


def _member(kind: type[enum.Enum]) -> Callable[[str], enum.Enum]:
    def parse(text: str) -> enum.Enum:
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"use one of {', '.join(str(m.value) for m in kind)}") from None

    return parse


__all__ = ["INTERNAL", "Parsed", "Range", "TransportOptions", "option"]

"""One rule for text that crosses a boundary: no NUL, no unpaired UTF-16 surrogate.

Both are valid in a Python ``str`` and as JSON escapes (``"\\u0000"``, ``"\\udb66"``)
but not in the stores users run: PostgreSQL refuses NUL in text, and a lone surrogate
cannot be encoded as UTF-8 at all. Text carrying one is refused where it enters (a
REST body, a path, a gRPC field, a message payload), with that surface's own error,
before any database sees it.

Every model derived from :class:`TextSafeModel` gets the rule on every text it holds,
at any depth (fields, list items, dict keys and values, ``Any`` values, nested models
of any base); :class:`~servicewire.messaging.Contract` is one, so every message
contract has it::

    class Note(TextSafeModel):
        body: str

    Note(body="a\\x00b")   # ValidationError: body: text must not contain NUL (U+0000);
                          # found at character 1   [type=unsafe_text]

For a single value outside a model, :data:`SafeText` is the annotated type, and
:func:`text_problem` / :func:`find_unsafe_text` say what is wrong without raising::

    text_problem("ok")                       # None
    find_unsafe_text({"a": ["x", "\\udb66"]})  # ("a.1", "text must not contain ...")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import AfterValidator, BaseModel, GetCoreSchemaHandler, ValidationError
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError
from pydantic_core import core_schema as cs

__all__ = [
    "UNSAFE_TEXT",
    "SafeText",
    "TextSafeModel",
    "check_text",
    "find_unsafe_text",
    "text_problem",
]

UNSAFE_TEXT: Final = "unsafe_text"
"""The error code (Pydantic error ``type``, REST problem ``errors[].code``)."""

# One C-level scan finds either: Python strings hold code points, and a string decoded
# from UTF-8 never holds a surrogate, so any surrogate here came from an escape.
_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_search = _UNSAFE.search
_MARK: Final = "servicewire_text"  # metadata of the validators this module adds
# Field values that hold no text: skipped without a look.
_NO_TEXT = frozenset({int, float, bool, type(None), Decimal, datetime, date, UUID, bytes})

Location = tuple[str | int, ...]


def text_problem(value: str) -> str | None:
    """Why ``value`` may not cross a boundary, or ``None`` when it may."""
    found = _search(value)
    if found is None:
        return None
    point = ord(found.group())
    what = "NUL" if point == 0 else "an unpaired UTF-16 surrogate"
    return f"text must not contain {what} (U+{point:04X}); found at character {found.start()}"


def find_unsafe_text(value: object, *, skip_checked: bool = False) -> tuple[str, str] | None:
    """The first unsafe text in ``value`` as ``(dotted location, problem)``, or ``None``.

    Walks strings, mappings (keys and values), lists, tuples, sets and Pydantic models;
    ``skip_checked`` leaves out :class:`TextSafeModel` instances (already validated).
    """
    found = _locate(value, skip_checked)
    if found is None:
        return None
    return ".".join(str(part) for part in found[0]), found[1]


def _locate(value: object, skip_checked: bool) -> tuple[Location, str] | None:
    stack: list[tuple[Location, object]] = [((), value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return where, problem
        elif isinstance(item, BaseModel):
            if not (skip_checked and isinstance(item, TextSafeModel)):
                stack.extend(((*where, k), v) for k, v in reversed(item.__dict__.items()))
        elif isinstance(item, Mapping):
            for key, inner in reversed(list(item.items())):
                stack.append(((*where, _name(key), "[key]"), key))
                stack.append(((*where, _name(key)), inner))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(item))))
    return None


def _name(key: object) -> str:
    if not isinstance(key, str):
        return str(key)
    return key if text_problem(key) is None else ascii(key)[1:-1]


def _holds_unsafe(value: object) -> bool:
    """Whether ``value`` holds unsafe text outside :class:`TextSafeModel` s (which check
    themselves): the fast yes/no of the after-validation check, no location built."""
    if isinstance(value, str):  # str, a str enum, a str subclass
        return _unsafe_str(value)
    if type(value) in _NO_TEXT:
        return False
    if isinstance(value, BaseModel):
        if isinstance(value, TextSafeModel):
            return False
        values: Iterable[object] = value.__dict__.values()
    elif isinstance(value, Mapping):
        for key in value:
            if _holds_unsafe(key):
                return True
        values = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        values = value
    else:
        return False
    for inner in values:
        kind = type(inner)
        if kind is str:  # inline: most values are text or numbers
            if _unsafe_str(inner):  # type: ignore[arg-type]
                return True
        elif kind not in _NO_TEXT and _holds_unsafe(inner):
            return True
    return False


def _unsafe_str(value: str) -> bool:
    # isascii() reads a flag (no scan): most text is ASCII, and then only NUL can be in it.
    return "\x00" in value if value.isascii() else _search(value) is not None


def check_text(value: str) -> str:
    """A Pydantic after-validator: ``value``, or an ``unsafe_text`` error."""
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError(UNSAFE_TEXT, problem)
    return value


SafeText = Annotated[str, AfterValidator(check_text)]
"""``str`` that refuses NUL and unpaired surrogates, for a value outside a model."""


def _check_str(value: str) -> str:
    if "\x00" in value if value.isascii() else _search(value) is not None:  # _unsafe_str
        check_text(value)  # raises, saying where
    return value


def _check_nested(value: object) -> object:
    """For ``Any`` values and models of other bases: every text inside them."""
    try:
        if not _holds_unsafe(value):
            return value
    except RecursionError:  # nested deeper than the fast check goes: walk it
        pass
    found = _locate(value, skip_checked=True)
    if found is None:  # nothing after all (it was only deep)
        return value
    where, problem = found
    raise _located_error(where, problem, value)


def _located_error(where: Location, problem: str, value: object) -> ValidationError:
    """An ``unsafe_text`` error at ``where`` inside the value being validated."""
    error = InitErrorDetails(
        type=PydanticCustomError(UNSAFE_TEXT, problem), loc=where, input=_at(value, where)
    )
    return ValidationError.from_exception_data("text", [error])


def _guard(node: Any, checks_itself: Callable[[Any], bool]) -> Any:
    """``node`` (a core schema or a part of one) with every text checked.

    ``checks_itself(ref)`` says whether a ``definition-ref`` names a model of ours,
    whose own schema is guarded already: no after-check is added for it (on the
    validation path that is one Python call saved per nested model).
    """
    if isinstance(node, list):
        return [_guard(item, checks_itself) for item in node]
    if not isinstance(node, dict):
        return node
    if (node.get("metadata") or {}).get(_MARK):
        return node  # guarded already (a nested model of ours)
    kind = node.get("type")
    if kind == "str":
        return cs.no_info_after_validator_function(_check_str, node, metadata={_MARK: True})
    if kind == "definition-ref" and checks_itself(node):
        return node
    if kind in ("any", "definition-ref"):
        # An Any holds whatever the input had; a reference is a model (of any base) or
        # an enum defined elsewhere in the schema: checked as values, after validation.
        # (A model of ours met here, e.g. one still being defined, is passed over at once.)
        return cs.no_info_after_validator_function(_check_nested, node, metadata={_MARK: True})
    return {
        key: value if key == "metadata" else _guard(value, checks_itself)
        for key, value in node.items()
    }


def _own_model(handler: GetCoreSchemaHandler) -> Callable[[Any], bool]:
    """For :func:`_guard`: whether a reference resolves to a :class:`TextSafeModel`."""

    def checks_itself(ref: Any) -> bool:
        try:
            target = handler.resolve_ref_schema(ref)
        except LookupError:  # a model still being defined (recursion): check its values
            return False
        cls = target.get("cls") if target.get("type") == "model" else None
        return isinstance(cls, type) and issubclass(cls, TextSafeModel)

    return checks_itself


class TextSafeModel(BaseModel):
    """A model whose every text refuses NUL and unpaired surrogates (``unsafe_text``).

    The check is added to the model's validation schema, so the JSON schema (and the
    OpenAPI documents) are unchanged and each error is located at the field that
    carried the text, as any other validation error is. A ``str`` field costs a
    substring test (ASCII text) or one regular-expression scan; a nested model of
    another base, or an ``Any``, is walked after validation (derive nested models from
    this class too: cheaper). Where Pydantic's own ``str`` validation refuses a
    surrogate first, as ``string_unicode``, REST problem details show that error as
    ``unsafe_text`` with the reason.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return _guard(handler(source), _own_model(handler))  # type: ignore[no-any-return]


def _at(value: object, where: Location) -> object:
    """The text at ``where`` inside ``value`` (for the error's ``input``)."""
    for part in where:
        if part == "[key]":
            break
        if isinstance(value, BaseModel):
            value = value.__dict__.get(str(part))
        elif isinstance(value, Mapping):
            value = next((v for k, v in value.items() if _name(k) == part), None)
        elif isinstance(value, (list, tuple)) and isinstance(part, int):
            value = value[part]
        else:
            break
    return value

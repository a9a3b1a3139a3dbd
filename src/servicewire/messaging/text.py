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
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, GetCoreSchemaHandler
from pydantic_core import CoreSchema, PydanticCustomError
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


def text_problem(value: str) -> str | None:
    """Why ``value`` may not cross a boundary, or ``None`` when it may."""
    found = _UNSAFE.search(value)
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
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return where, problem
        elif isinstance(item, BaseModel):
            if not (skip_checked and isinstance(item, TextSafeModel)):
                stack.extend((_join(where, k), v) for k, v in reversed(item.__dict__.items()))
        elif isinstance(item, Mapping):
            for key, inner in reversed(list(item.items())):
                stack.append((_join(where, "[key]"), key))
                stack.append((_join(where, _name(key)), inner))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((_join(where, str(i)), v) for i, v in reversed(list(enumerate(item))))
    return None


def _name(key: object) -> str:
    if isinstance(key, str) and text_problem(key) is None:
        return key
    return ascii(key)


def _join(where: str, part: str) -> str:
    return f"{where}.{part}" if where else part


def check_text(value: str) -> str:
    """A Pydantic after-validator: ``value``, or an ``unsafe_text`` error."""
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError(UNSAFE_TEXT, problem)
    return value


def _check_str(value: Any, handler: cs.ValidatorFunctionWrapHandler) -> Any:
    """Text given as text is checked before the ``str`` validator, which would refuse a
    surrogate with a vaguer ``string_unicode``; text made from other input, after."""
    if isinstance(value, str):
        if _search(value) is not None:
            check_text(value)  # raises, saying why
        return handler(value)
    return check_text(handler(value))


def _check_nested(value: Any) -> Any:
    """For ``Any`` values and models of other bases: every text inside them."""
    found = find_unsafe_text(value, skip_checked=True)
    if found is not None:
        where, problem = found
        raise PydanticCustomError(UNSAFE_TEXT, f"{where}: {problem}" if where else problem)
    return value


SafeText = Annotated[str, AfterValidator(check_text)]
"""``str`` that refuses NUL and unpaired surrogates, for a value outside a model."""


def _guard(node: Any) -> Any:
    """``node`` (a core schema or a part of one) with every text checked."""
    if isinstance(node, list):
        return [_guard(item) for item in node]
    if not isinstance(node, dict):
        return node
    if (node.get("metadata") or {}).get(_MARK):
        return node  # guarded already (a nested model of ours)
    kind = node.get("type")
    if kind == "str":
        return cs.no_info_wrap_validator_function(_check_str, node, metadata={_MARK: True})
    if kind in ("any", "definition-ref"):
        # An Any holds whatever the input had; a reference is a model (of any base)
        # defined elsewhere in the schema: both are checked as values, after validation.
        return cs.no_info_after_validator_function(_check_nested, node, metadata={_MARK: True})
    return {key: value if key == "metadata" else _guard(value) for key, value in node.items()}


class TextSafeModel(BaseModel):
    """A model whose every text refuses NUL and unpaired surrogates (``unsafe_text``).

    The check is added to the model's validation schema (the JSON schema, and so the
    OpenAPI documents, are unchanged), so each error names the field that carried it,
    as any other validation error does.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return _guard(handler(source))  # type: ignore[no-any-return]

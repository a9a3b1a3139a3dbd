"""Hypothesis strategies for contract values, built from the contract's own fields.

``st.from_type`` would also generate values no wire format can carry (integers beyond
64 bits, NaN, naive datetimes), so each field's strategy comes from the same type tree
the codecs use, kept to what the documented type mapping promises to round-trip.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from servicewire.codecs._types import TypeNode, model_info

INT64 = (-(2**63), 2**63 - 1)

EXAMPLES = int(os.environ.get("SERVICEWIRE_FUZZ_EXAMPLES", "200"))
"""Examples per property: 200 in `make test`; nightly runs set 10000."""

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    derandomize=False,
)
SMALL = settings(FUZZ, max_examples=max(20, EXAMPLES // 10))


# Any text a contract may hold: not NUL (nor a surrogate, which hypothesis leaves out).
CONTRACT_TEXT = st.characters(exclude_characters="\x00")


def leaf(node: TypeNode) -> st.SearchStrategy[Any]:
    kind = node.kind
    if kind == "str":
        return st.text(CONTRACT_TEXT, max_size=20)
    if kind == "int":
        return st.integers(*INT64)
    if kind == "float":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "bool":
        return st.booleans()
    if kind == "decimal":
        return st.decimals(allow_nan=False, allow_infinity=False)
    if kind == "datetime":
        return st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
        )
    if kind == "date":
        return st.dates()
    if kind == "uuid":
        return st.uuids()
    if kind in ("enum", "literal"):
        assert node.values
        if node.enum_cls is not None:
            return st.sampled_from(list(node.enum_cls))
        return st.sampled_from(node.values)
    raise AssertionError(kind)


def for_node(node: TypeNode, depth: int = 0) -> st.SearchStrategy[Any]:
    if node.is_leaf:
        return leaf(node)
    assert node.kind == "model" or node.inner is not None
    # Past a few levels containers stay empty and optionals None, so recursive models
    # (a tree of nodes) get finite strategies.
    if node.kind == "optional":
        assert node.inner is not None
        return st.none() if depth > 3 else st.none() | for_node(node.inner, depth)
    if node.kind == "list":
        assert node.inner is not None
        return st.just([]) if depth > 3 else st.lists(for_node(node.inner, depth + 1), max_size=3)
    if node.kind == "dict":
        assert node.inner is not None
        if depth > 3:
            return st.just({})
        return st.dictionaries(
            st.text(CONTRACT_TEXT, max_size=8), for_node(node.inner, depth + 1), max_size=3
        )
    assert node.model is not None
    return values_of(node.model, depth + 1)


def values_of(cls: type[BaseModel], depth: int = 0) -> st.SearchStrategy[Any]:
    """Valid instances of ``cls`` with every field generated (defaults sometimes kept)."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in model_info(cls).fields:
        if not spec.required and depth > 3:
            fields[spec.name] = st.just(spec.default)
            continue
        strategy = for_node(spec.node, depth)
        if not spec.required:
            strategy = strategy | st.just(spec.default)
        fields[spec.name] = strategy
    # Constraints (Field(gt=0), validators) are not modelled: values they reject are
    # filtered out, so the strategy stays valid for any contract.
    return st.fixed_dictionaries(fields).map(lambda kw: _build(cls, kw)).filter(_valid)


_INVALID: Any = object()


def _build(cls: type[BaseModel], kw: dict[str, Any]) -> Any:
    try:
        return cls(**kw)
    except ValidationError:
        return _INVALID


def _valid(value: Any) -> bool:
    return value is not _INVALID

"""Generated functions that turn a validated model instance into plain Python data.

``model_dump`` is fast, but a codec then still walks the result to fix the few values
its library cannot take (a ``Decimal`` for Avro's string, say). Generating one function
per model that reads the attributes and converts in the same pass does both at once::

    dump = build_dumper(Order, lambda node, var: f"str({var})" if node.kind == "decimal" else var)
    dump(order)   # {'id': UUID(...), 'lines': [{'price': '9.99', ...}], ...}

The generated source uses only the model's own field names (Python identifiers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from servicewire.codecs._types import TypeNode, model_info

LeafExpr = Callable[[TypeNode, str], str]
"""Given a leaf type and a variable name, the expression that converts it (or the name)."""


def build_dumper(
    cls: type[BaseModel], leaf: LeafExpr, helpers: dict[str, Any] | None = None
) -> Callable[[Any], dict[str, Any]]:
    """A function ``instance -> dict`` for ``cls``; ``helpers`` are names ``leaf`` uses."""
    builder = _Builder(leaf)
    builder.function(cls)
    namespace: dict[str, Any] = dict(helpers or {})
    source = "\n".join(builder.lines)
    exec(compile(source, f"<dumper {cls.__qualname__}>", "exec"), namespace)
    dumper: Callable[[Any], dict[str, Any]] = namespace["_m0"]
    return dumper


class _Builder:
    def __init__(self, leaf: LeafExpr) -> None:
        self.leaf = leaf
        self.index: dict[type[BaseModel], int] = {}
        self.lines: list[str] = []
        self.names = 0

    def fresh(self) -> str:
        self.names += 1
        return f"y{self.names}"

    def function(self, cls: type[BaseModel]) -> str:
        known = self.index.get(cls)
        if known is not None:
            return f"_m{known}"
        i = len(self.index)
        self.index[cls] = i
        items = [
            f"{spec.name!r}: {self.expr(spec.node, f'v.{spec.name}')}"
            for spec in model_info(cls).fields
        ]
        self.lines += [f"def _m{i}(v):", f"    return {{{', '.join(items)}}}", ""]
        return f"_m{i}"

    def expr(self, node: TypeNode, var: str) -> str:
        if node.is_leaf:
            return self.leaf(node, var)
        assert node.kind == "model" or node.inner is not None
        if node.kind == "optional":
            assert node.inner is not None
            inner = self.expr(node.inner, var)
            return var if inner == var else f"(None if {var} is None else {inner})"
        if node.kind == "list":
            assert node.inner is not None
            y = self.fresh()
            item = self.expr(node.inner, y)
            return f"list({var})" if item == y else f"[{item} for {y} in {var}]"
        if node.kind == "dict":
            assert node.inner is not None
            y = self.fresh()
            item = self.expr(node.inner, y)
            return f"dict({var})" if item == y else f"{{k: {item} for k, {y} in {var}.items()}}"
        assert node.model is not None
        return f"{self.function(node.model)}({var})"

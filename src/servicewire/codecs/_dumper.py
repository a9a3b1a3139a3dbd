"""Generated functions between a model and the plain Python data a codec's library takes.

``model_dump`` is fast, but a codec then still walks the result to fix the few values
its library cannot take (a ``Decimal`` for Avro's string, say). Generating one function
per model that reads the attributes and converts in the same pass does both at once::

    dump = build_dumper(Order, lambda node, var: f"str({var})" if node.kind == "decimal" else var)
    dump(order)   # {'id': UUID(...), 'lines': [{'price': '9.99', ...}], ...}

The other way, :func:`build_loader` converts, in place, the few leaves of a record
the library read that validation needs in another form (``None`` when there are none)::

    load = build_loader(Order, lambda node, var: f"_at({var})" if node.kind == "datetime" else var)
    load(record)  # the same dict, its datetimes converted

The generated source uses only the model's own field names (Python identifiers). It
reads them from the instance's ``__dict__`` (where Pydantic keeps field values; a
subscript is cheaper than an attribute lookup through the class), and for a model
none of whose fields needs converting it returns that ``__dict__`` itself, not a
copy: the result is for reading (a codec's library), never for changing.
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


def build_loader(
    cls: type[BaseModel], leaf: LeafExpr, helpers: dict[str, Any] | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """A function converting a record of ``cls`` in place (and returning it), or ``None``
    when ``leaf`` converts nothing in it. Not for recursive models (a model met again
    while being built counts as having nothing to convert)."""
    builder = _LoaderBuilder(leaf)
    top = builder.function(cls)
    if top is None:
        return None
    namespace: dict[str, Any] = dict(helpers or {})
    source = "\n".join(builder.lines)
    exec(compile(source, f"<loader {cls.__qualname__}>", "exec"), namespace)
    loader: Callable[[dict[str, Any]], dict[str, Any]] = namespace[top]
    return loader


class _LoaderBuilder:
    def __init__(self, leaf: LeafExpr) -> None:
        self.leaf = leaf
        self.done: dict[type[BaseModel], str | None] = {}
        self.lines: list[str] = []
        self.names = 0

    def fresh(self) -> str:
        self.names += 1
        return f"y{self.names}"

    def function(self, cls: type[BaseModel]) -> str | None:
        if cls in self.done:
            return self.done[cls]
        self.done[cls] = None
        body = []
        for spec in model_info(cls).fields:
            var = f"r[{spec.name!r}]"
            expr = self.expr(spec.node, var)
            if expr != var:
                body.append(f"    {var} = {expr}")
        if not body:
            return None
        name = f"_l{sum(1 for n in self.done.values() if n is not None)}"
        self.done[cls] = name
        self.lines += [f"def {name}(r):", *body, "    return r", ""]
        return name

    def expr(self, node: TypeNode, var: str) -> str:
        if node.is_leaf:
            return self.leaf(node, var)
        if node.kind == "model":
            assert node.model is not None
            function = self.function(node.model)
            return var if function is None else f"{function}({var})"
        assert node.inner is not None
        if node.kind == "optional":
            inner = self.expr(node.inner, var)
            return var if inner == var else f"(None if {var} is None else {inner})"
        y = self.fresh()
        item = self.expr(node.inner, y)
        if item == y:
            return var
        if node.kind == "dict":
            return f"{{k: {item} for k, {y} in {var}.items()}}"
        if node.inner.kind == "model":  # map() skips the comprehension's frame
            assert node.inner.model is not None
            return f"list(map({self.done[node.inner.model]}, {var}))"
        return f"[{item} for {y} in {var}]"


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
        fields = [(spec.name, f"d[{spec.name!r}]", spec.node) for spec in model_info(cls).fields]
        exprs = [(name, var, self.expr(node, var)) for name, var, node in fields]
        if all(expr == var for _, var, expr in exprs):
            body = ["    return v.__dict__"]  # nothing to convert: no copy either
        else:
            items = ", ".join(f"{name!r}: {expr}" for name, _, expr in exprs)
            body = ["    d = v.__dict__", f"    return {{{items}}}"]
        self.lines += [f"def _m{i}(v):", *body, ""]
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
            if item == y:
                return f"list({var})"
            if node.inner.kind == "model":  # map() skips the comprehension's frame
                assert node.inner.model is not None
                return f"list(map({self.function(node.inner.model)}, {var}))"
            return f"[{item} for {y} in {var}]"
        if node.kind == "dict":
            assert node.inner is not None
            y = self.fresh()
            item = self.expr(node.inner, y)
            return f"dict({var})" if item == y else f"{{k: {item} for k, {y} in {var}.items()}}"
        assert node.model is not None
        return f"{self.function(node.model)}({var})"

"""Which bump each kind of change needs, in one table, and how to override it.

Every comparer reports a change by code; :class:`Policy` turns the code into a bump.
:data:`DEFAULT_BUMPS` is the whole rule book (docs/evolution.md prints it). Cases the
literature leaves open get a default here and can be changed per project::

    policy = Policy.from_specs(["tolerant-clients"])          # a preset
    policy = Policy.from_specs(["response-enum-value-added=minor"])
    policy.bump("response-enum-value-added")                  # Bump.MINOR

Projects set overrides in ``pyproject.toml`` under ``[tool.servicewire.api.policy]``
(``"response-enum-value-added" = "minor"``); ``servicewire compat --policy`` takes the
same ``CODE=LEVEL`` pairs, preset names, or a JSON/TOML file of pairs.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servicewire.evolution.model import Bump, DocumentKind, Report

MAJOR, MINOR, PATCH = Bump.MAJOR, Bump.MINOR, Bump.PATCH

# JSON Schema changes, judged per context (request, response, message); see
# servicewire.evolution.jsonschema for what each context means.
_SCHEMA_RULES: dict[str, tuple[Bump, Bump, Bump]] = {
    #                          request response message
    "property-added-optional": (MINOR, MINOR, MINOR),
    "property-added-required": (MAJOR, MINOR, MAJOR),
    "property-added-closed": (MINOR, MAJOR, MAJOR),
    "property-removed": (MAJOR, MAJOR, MAJOR),
    "property-became-required": (MAJOR, MINOR, MAJOR),
    "property-became-optional": (MINOR, MAJOR, MAJOR),
    "enum-value-added": (MINOR, MAJOR, MAJOR),
    "enum-value-removed": (MAJOR, PATCH, MAJOR),
    "type-widened": (MINOR, MAJOR, MAJOR),
    "type-narrowed": (MAJOR, PATCH, MAJOR),
    "type-changed": (MAJOR, MAJOR, MAJOR),
    "constraint-tightened": (MAJOR, PATCH, MAJOR),
    "constraint-loosened": (MINOR, MAJOR, MAJOR),
    "constraint-changed": (MAJOR, MAJOR, MAJOR),
    "closed-to-extension": (MAJOR, PATCH, MAJOR),
    "opened-to-extension": (MINOR, MINOR, MAJOR),
    "variant-added": (MINOR, MAJOR, MAJOR),
    "variant-removed": (MAJOR, PATCH, MAJOR),
    "const-changed": (MAJOR, MAJOR, MAJOR),
    # Readers on both sides dispatch on the discriminator: a renamed property or a value
    # that now selects another schema (or none) sends data to the wrong code.
    "discriminator-property-changed": (MAJOR, MAJOR, MAJOR),
    "discriminator-mapping-changed": (MAJOR, MAJOR, MAJOR),
    # A new value is a new variant: fine for a server that reads it, not for a client
    # that dispatches over the values it knows (like a new response enum value).
    "discriminator-mapping-added": (MINOR, MAJOR, MAJOR),
    # A changed `if` (or a branch changed in a way we cannot order) moves constraints
    # across instances: some inputs are rejected and some outputs are new.
    "conditional-changed": (MAJOR, MAJOR, MAJOR),
    # readOnly/writeOnly (see jsonschema._visible): a property clients sent that is now
    # readOnly is gone for writers; one they read that is now writeOnly is gone for
    # readers. Each is only reported in the context it hides the property from.
    "property-became-read-only": (MAJOR, PATCH, PATCH),
    "property-became-write-only": (PATCH, MAJOR, PATCH),
    # A readOnly/writeOnly flag changed where it hides nothing from this side.
    "property-access-changed": (PATCH, PATCH, PATCH),
    # A property added or removed that this side never sees (readOnly in a request,
    # writeOnly in a response).
    "hidden-property-added": (PATCH, PATCH, PATCH),
    "hidden-property-removed": (PATCH, PATCH, PATCH),
}

_OTHER_RULES: dict[str, Bump] = {
    # Anywhere
    "documentation-changed": PATCH,
    "default-changed": PATCH,
    # OpenAPI
    "operation-added": MINOR,
    "operation-removed": MAJOR,
    "operation-deprecated": MINOR,
    "request-parameter-added-required": MAJOR,
    "request-parameter-added-optional": MINOR,
    "request-parameter-removed": MAJOR,
    "request-parameter-became-required": MAJOR,
    "request-parameter-became-optional": MINOR,
    "request-body-added-required": MAJOR,
    "request-body-added-optional": MINOR,
    "request-body-removed": MAJOR,
    "request-body-became-required": MAJOR,
    "request-body-became-optional": MINOR,
    "request-media-type-added": MINOR,
    "request-media-type-removed": MAJOR,
    "response-status-added": MINOR,
    "response-status-removed": MAJOR,
    "response-error-status-removed": PATCH,
    "response-media-type-added": MINOR,
    "response-media-type-removed": MAJOR,
    "response-header-added": MINOR,
    "response-header-removed": MAJOR,
    "response-header-became-optional": MAJOR,
    "response-header-became-required": MINOR,
    "request-parameter-style-changed": MAJOR,
    "security-requirement-added": MAJOR,
    "security-requirement-removed": MINOR,
    "security-alternative-added": MINOR,
    "security-alternative-removed": MAJOR,
    "security-scope-added": MAJOR,
    "security-scope-removed": MINOR,
    "security-scheme-changed": MAJOR,
    "server-added": MINOR,
    "server-removed": MAJOR,
    "server-base-path-changed": MAJOR,
    "webhook-added": MINOR,
    "webhook-removed": MAJOR,
    "webhook-parameter-added": MINOR,
    "webhook-parameter-removed": MAJOR,
    "webhook-response-added": MINOR,
    "webhook-response-removed": MAJOR,
    "callback-added": MINOR,
    "callback-removed": MAJOR,
    "callback-parameter-added": MINOR,
    "callback-parameter-removed": MAJOR,
    "callback-response-added": MINOR,
    "callback-response-removed": MAJOR,
    # Protobuf
    "package-changed": MAJOR,
    "message-added": MINOR,
    "message-removed": MAJOR,
    "field-added": MINOR,
    "field-added-required": MAJOR,
    "field-removed": MAJOR,
    "field-renamed": MAJOR,
    "field-number-changed": MAJOR,
    "field-number-reused": MAJOR,
    "field-type-changed": MAJOR,
    "field-label-changed": MAJOR,
    "field-oneof-changed": MAJOR,
    "field-json-name-changed": MAJOR,
    "field-json-name-declared": PATCH,
    "field-default-changed": MAJOR,
    "field-presence-changed": MAJOR,
    "reserved-added": PATCH,
    "reserved-removed": MAJOR,
    "enum-added": MINOR,
    "enum-removed": MAJOR,
    "enum-value-added": MINOR,
    "enum-value-removed": MAJOR,
    "enum-value-renamed": MAJOR,
    "enum-value-number-changed": MAJOR,
    "service-added": MINOR,
    "service-removed": MAJOR,
    "method-added": MINOR,
    "method-removed": MAJOR,
    "method-streaming-changed": MAJOR,
    "method-type-changed": MAJOR,
    "option-changed": PATCH,
    "generated-code-option-changed": MAJOR,
    "syntax-changed": MAJOR,
    "extension-added": MINOR,
    "extension-removed": MAJOR,
    "extension-changed": MAJOR,
    # Avro
    "field-added-with-default": MINOR,
    "field-added-without-default": MAJOR,
    "field-order-changed": PATCH,
    "aliases-changed": PATCH,
    "type-changed": MAJOR,
    "type-promoted": MAJOR,
    "union-branch-added": MAJOR,
    "union-branch-removed": MAJOR,
    "union-branches-reordered": PATCH,
    "record-renamed": MAJOR,
    "enum-renamed": MAJOR,
    "enum-symbol-added": MAJOR,
    "enum-symbol-added-with-default": MINOR,
    "enum-symbol-removed": MAJOR,
    "enum-symbols-reordered": PATCH,
    "fixed-renamed": MAJOR,
    "fixed-size-changed": MAJOR,
    "logical-type-changed": MAJOR,
    # AsyncAPI
    "channel-added": MINOR,
    "channel-removed": MAJOR,
    "channel-address-changed": MAJOR,
    "channel-message-added": MINOR,
    "channel-message-removed": MAJOR,
    "message-content-type-changed": MAJOR,
    "message-payload-format-changed": MAJOR,
    "message-correlation-id-changed": MAJOR,
    # Avro payloads on a channel the application only receives on (its new schema
    # reads old producers' messages): changes Avro's resolution makes safe for readers.
    "receive-type-promoted": MINOR,
    "receive-union-branch-added": MINOR,
    "receive-enum-symbol-added": MINOR,
    "receive-field-removed": MINOR,
    "operation-action-changed": MAJOR,
    "operation-channel-changed": MAJOR,
    "operation-message-added": MINOR,
    "operation-message-removed": MAJOR,
    "operation-reply-added": MINOR,
    "operation-reply-removed": MAJOR,
    "operation-reply-changed": MAJOR,
}


def _default_bumps() -> dict[str, Bump]:
    table: dict[str, Bump] = {}
    for base, (request, response, message) in _SCHEMA_RULES.items():
        table[f"request-{base}"] = request
        table[f"response-{base}"] = response
        table[f"message-{base}"] = message
        # An AsyncAPI channel the application only receives on: others write, the new
        # application reads, which is the request reading.
        table[f"receive-{base}"] = request
    table.update(_OTHER_RULES)
    return table


DEFAULT_BUMPS: Mapping[str, Bump] = _default_bumps()
"""Every change code and the bump it needs by default."""

PRESETS: Mapping[str, Mapping[str, Bump]] = {
    "strict": {},
    # Clients written as tolerant readers map unknown enum values to a fallback, so a
    # new value in a response does not break them.
    "tolerant-clients": {
        "response-enum-value-added": MINOR,
        "response-variant-added": MINOR,
        "response-discriminator-mapping-added": MINOR,
    },
    # Consumers that dead-letter unknown message types on a channel they read.
    "strict-channels": {"channel-message-added": MAJOR, "operation-message-added": MAJOR},
}
"""Named sets of overrides for the open cases."""


@dataclass(frozen=True, slots=True)
class Policy:
    """:data:`DEFAULT_BUMPS` with per-code overrides."""

    overrides: Mapping[str, Bump] = field(default_factory=dict)

    def bump(self, code: str) -> Bump:
        """The bump change ``code`` needs; an unknown code is MAJOR (fail safe)."""
        found = self.overrides.get(code)
        if found is not None:
            return found
        return DEFAULT_BUMPS.get(code, MAJOR)

    @classmethod
    def from_mapping(cls, pairs: Mapping[str, str | Bump]) -> Policy:
        """Overrides from ``{"code": "minor"}``; unknown codes and levels are errors."""
        overrides: dict[str, Bump] = {}
        for code, level in pairs.items():
            if code not in DEFAULT_BUMPS:
                raise ValueError(f"unknown change code in policy: {code!r}")
            overrides[code] = level if isinstance(level, Bump) else Bump.parse(str(level))
        return cls(overrides)

    @classmethod
    def from_specs(cls, specs: Iterable[str], base: Policy | None = None) -> Policy:
        """Combine presets (``tolerant-clients``), ``CODE=LEVEL`` pairs and JSON/TOML files."""
        overrides: dict[str, Bump] = dict(base.overrides) if base else {}
        for spec in specs:
            if spec in PRESETS:
                overrides.update(PRESETS[spec])
            elif "=" in spec:
                code, _, level = spec.partition("=")
                overrides.update(cls.from_mapping({code.strip(): level}).overrides)
            elif Path(spec).is_file():
                overrides.update(cls.from_mapping(_read_pairs(Path(spec))).overrides)
            else:
                names = ", ".join(PRESETS)
                raise ValueError(f"policy {spec!r} is not a preset ({names}), CODE=LEVEL or a file")
        return cls(overrides)


def _read_pairs(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"policy file {path} must hold a table of CODE = LEVEL")
    return {str(k): str(v) for k, v in data.items()}


class Collector:
    """Builds a :class:`Report`, looking each change's bump up in a :class:`Policy`."""

    def __init__(self, kind: DocumentKind, policy: Policy) -> None:
        self.report = Report(kind)
        self.policy = policy
        # While a shared schema is compared: where the document uses it.
        self.used_at: str | None = None

    def add(self, code: str, location: str, message: str) -> None:
        self.report.add(code, self.policy.bump(code), location, message, self.used_at)

"""Messages and contracts: the envelope, its headers, typed versioned contracts, channels.

The bottom of the house: nothing here knows formats, transports or databases::

    from servicewire.messaging import Message, MessageKind, headers, shard_for

:mod:`~.message` (the immutable envelope), :mod:`~.headers` (standard header names),
:mod:`~.ids` (time-ordered ids), :mod:`~.contracts` (typed contracts and their
registry), :mod:`~.versioning` (semantic versions), :mod:`~.channels` (names, shards,
dead-letter and reply channels), :mod:`~.cloudevents` (CloudEvents bindings),
:mod:`~.text` (the rule every text crossing a boundary obeys: no NUL, no lone surrogate).
"""

from servicewire.messaging import headers
from servicewire.messaging.channels import (
    DEFAULT_SHARDS,
    ChannelUse,
    dead_letter_channel,
    reply_channel,
    shard_for,
    validate_name,
)
from servicewire.messaging.cloudevents import from_binding, to_binding
from servicewire.messaging.contracts import (
    Command,
    Contract,
    ContractRegistry,
    Document,
    Event,
    FailureReply,
    Reply,
    SuccessReply,
    default_registry,
)
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Headers, Message, MessageKind
from servicewire.messaging.text import (
    UNSAFE_TEXT,
    SafeText,
    TextSafeModel,
    find_unsafe_text,
    text_problem,
)
from servicewire.messaging.versioning import SemVer

__all__ = [
    "DEFAULT_SHARDS",
    "UNSAFE_TEXT",
    "ChannelUse",
    "Command",
    "Contract",
    "ContractRegistry",
    "Document",
    "Event",
    "FailureReply",
    "Headers",
    "Message",
    "MessageKind",
    "Reply",
    "SafeText",
    "SemVer",
    "SuccessReply",
    "TextSafeModel",
    "dead_letter_channel",
    "default_registry",
    "find_unsafe_text",
    "from_binding",
    "headers",
    "new_id",
    "reply_channel",
    "shard_for",
    "text_problem",
    "to_binding",
    "validate_name",
]

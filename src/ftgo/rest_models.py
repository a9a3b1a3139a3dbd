"""What FTGO's REST adapters share: bodies whose JSON names are camelCase.

FTGO's public JSON uses camelCase (``consumerId``), Python uses snake_case; a model
derived from :class:`CamelModel` translates, and accepts either on input::

    class CreateConsumerBody(CamelModel):
        order_limit: Decimal       # {"orderLimit": "50"} or {"order_limit": "50"}

    CreateConsumerBody.model_validate({"orderLimit": "50"}).model_dump(by_alias=True)

Like every message contract, a :class:`CamelModel` is a
:class:`~servicewire.messaging.TextSafeModel`: a body whose text holds NUL or an
unpaired UTF-16 surrogate anywhere is answered 422 naming the field, before any
database sees it.

It lives below ``ftgo.app`` so that each service's ``rest.py`` depends on it and the app
(which wires the services together) depends on the services, never the reverse.
"""

from __future__ import annotations

from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

from servicewire.messaging import TextSafeModel


class CamelModel(TextSafeModel):
    """A request or response body with camelCase JSON names."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

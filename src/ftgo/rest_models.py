"""What FTGO's REST adapters share: bodies whose JSON names are camelCase.

FTGO's public JSON uses camelCase (``consumerId``), Python uses snake_case; a model
derived from :class:`CamelModel` translates, and accepts either on input::

    class CreateConsumerBody(CamelModel):
        order_limit: Decimal       # {"orderLimit": "50"} or {"order_limit": "50"}

    CreateConsumerBody.model_validate({"orderLimit": "50"}).model_dump(by_alias=True)

It lives below ``ftgo.app`` so that each service's ``rest.py`` depends on it and the app
(which wires the services together) depends on the services, never the reverse.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A request or response body with camelCase JSON names."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

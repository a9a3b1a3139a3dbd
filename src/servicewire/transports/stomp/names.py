"""Where a channel and its groups live on ActiveMQ: a virtual topic and a queue per group.

A channel is the virtual topic ``VirtualTopic.<channel>``; each group reads its own queue
``Consumer.<group>.VirtualTopic.<channel>``, which ActiveMQ fills with a copy of every
message published to the topic once the queue exists (its virtual-destination
interceptor, on by default). Members of one group compete on that queue; separate groups
each get everything::

    topic("orders")                 # '/topic/VirtualTopic.orders'
    group_queue("orders", "billing")   # '/queue/Consumer.billing.VirtualTopic.orders'

ActiveMQ finds the group queues with the wildcard ``Consumer.*.VirtualTopic.>``, where
``*`` is one dot-separated name element, so a dot inside a group name would hide the
queue from the topic: dots become ``~``, a character our names never contain (the
mapping is one to one).
"""

from __future__ import annotations

from servicewire.messaging.channels import validate_name


def topic(channel: str) -> str:
    """The STOMP destination a channel's messages are published to."""
    return f"/topic/VirtualTopic.{validate_name(channel)}"


def group_queue(channel: str, group: str) -> str:
    """The STOMP destination of ``group``'s queue on ``channel``."""
    element = validate_name(group, "group").replace(".", "~")
    return f"/queue/Consumer.{element}.VirtualTopic.{validate_name(channel)}"

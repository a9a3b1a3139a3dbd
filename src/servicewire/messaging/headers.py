"""Standard header names of the Servicewire envelope.

Every standard header name is also a valid CloudEvents 1.0 context attribute name
(lowercase letters and digits, at most 20 characters). A message's headers *are* its
CloudEvents attributes, so each protocol binding only adds its prefix (``ce_`` on Kafka,
``ce-`` on HTTP and NATS, ``cloudEvents:`` on AMQP); see :mod:`servicewire.messaging.cloudevents`.

=====================  ======================  =========================================
constant               header / CE attribute   meaning
=====================  ======================  =========================================
``ID``                 ``id``                  unique, time-ordered message id (UUIDv7)
``SPEC_VERSION``       ``specversion``         CloudEvents spec version, always ``1.0``
``SOURCE``             ``source``              the sending service (URI reference)
``TYPE``               ``type``                contract wire name, e.g. ``ftgo.order.CreateOrder``
``CONTENT_TYPE``       ``datacontenttype``     payload format, selects the codec
``TIME``               ``time``                sent-at, RFC 3339 UTC
``DESTINATION``        ``destination``         the channel the message is sent to
``KIND``               ``messagekind``         document, command, event or reply
``VERSION``            ``typeversion``         contract semantic version ``MAJOR.MINOR.PATCH``
``PARTITION_KEY``      ``partitionkey``        key for per-key order (CE partitioning ext.)
``CORRELATION_ID``     ``correlationid``       id that ties a conversation together
``CAUSATION_ID``       ``causationid``         id of the message that caused this one
``REPLY_TO``           ``replyto``             channel a reply should go to
``REPLY_OUTCOME``      ``replyoutcome``        ``success`` or ``failure`` on replies
``TRACEPARENT``        ``traceparent``         W3C trace context (CE distributed tracing ext.)
``TRACESTATE``         ``tracestate``          W3C trace state
``BAGGAGE``            ``baggage``             W3C baggage (OpenTelemetry's default propagators)
=====================  ======================  =========================================

Trace context is written and read by OpenTelemetry's configured propagators
(:mod:`servicewire.telemetry.propagation`); a propagator's field is stored under
:func:`propagation_header` of its name, which leaves the W3C names above unchanged.
"""

from __future__ import annotations

import functools
from typing import Final

ID: Final = "id"
SPEC_VERSION: Final = "specversion"
SOURCE: Final = "source"
TYPE: Final = "type"
CONTENT_TYPE: Final = "datacontenttype"
TIME: Final = "time"
DESTINATION: Final = "destination"
KIND: Final = "messagekind"
VERSION: Final = "typeversion"
PARTITION_KEY: Final = "partitionkey"
CORRELATION_ID: Final = "correlationid"
CAUSATION_ID: Final = "causationid"
REPLY_TO: Final = "replyto"
REPLY_OUTCOME: Final = "replyoutcome"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
BAGGAGE: Final = "baggage"

# Headers the delivery pipeline adds when it dead-letters a message.
DLQ_REASON: Final = "dlqreason"
DLQ_EXCEPTION: Final = "dlqexception"
DLQ_HANDLER: Final = "dlqhandler"
DLQ_CHANNEL: Final = "dlqchannel"
DLQ_GROUP: Final = "dlqgroup"
DLQ_ATTEMPTS: Final = "dlqattempts"
DLQ_TIME: Final = "dlqtime"
# ... and when the dead letter would exceed the transport's size limit, which it sends
# with its payload replaced by a short note (``dlqpayload`` = ``removed``).
DLQ_PAYLOAD: Final = "dlqpayload"
DLQ_PAYLOAD_SIZE: Final = "dlqpayloadsize"
DLQ_PAYLOAD_REASON: Final = "dlqpayloadreason"

# Delivery attempt carried across re-publication by transports that redeliver by
# republishing (brokers without a native delivery counter).
ATTEMPT: Final = "deliveryattempt"

CLOUDEVENTS_SPEC_VERSION: Final = "1.0"

STANDARD: Final = frozenset(
    {
        ID,
        SPEC_VERSION,
        SOURCE,
        TYPE,
        CONTENT_TYPE,
        TIME,
        DESTINATION,
        KIND,
        VERSION,
        PARTITION_KEY,
        CORRELATION_ID,
        CAUSATION_ID,
        REPLY_TO,
        REPLY_OUTCOME,
        TRACEPARENT,
        TRACESTATE,
        BAGGAGE,
    }
)


@functools.lru_cache(maxsize=256)
def propagation_header(field: str) -> str:
    """The message header a trace propagator's ``field`` is stored under.

    Header names are CloudEvents attribute names (lowercase letters and digits), so
    the field is lowercased and everything else dropped; the W3C fields keep their
    names::

        propagation_header("traceparent")    # "traceparent"
        propagation_header("X-B3-TraceId")   # "xb3traceid"
    """
    return "".join(c for c in field.lower() if c.isascii() and c.isalnum())

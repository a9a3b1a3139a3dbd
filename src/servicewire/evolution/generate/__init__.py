"""Documents generated from code: AsyncAPI 3.0 for a service's channels, and HTML.

    from servicewire.evolution import build_asyncapi, document_text, load_uses, render_html

    doc = build_asyncapi("Order Service", "1.2.0", service.channel_uses())
    Path("order-service.json").write_text(document_text(doc, ".json"))
    Path("order-service.html").write_text(render_html(doc))

    uses, title, version = load_uses("ftgo.asyncapi:order_service")   # what the CLI reads

The command line is ``servicewire docs asyncapi MODULE:ATTR --html out.html``.
"""

from servicewire.evolution.generate.asyncapi import build_asyncapi
from servicewire.evolution.generate.html import render_html
from servicewire.evolution.generate.targets import TargetError, load_uses
from servicewire.evolution.generate.text import document_text
from servicewire.messaging.channels import ChannelUse

__all__ = [
    "ChannelUse",
    "TargetError",
    "build_asyncapi",
    "document_text",
    "load_uses",
    "render_html",
]

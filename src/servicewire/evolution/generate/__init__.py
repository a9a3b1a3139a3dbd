"""Documents generated from code: AsyncAPI 3.0 for a service's channels, and HTML.

    from servicewire.evolution.generate import ChannelUse, build_asyncapi, render_html

    doc = build_asyncapi("Order Service", "1.2.0", service.channel_uses())
    Path("order-service.html").write_text(render_html(doc))

The command line is ``servicewire docs asyncapi MODULE:ATTR --html out.html``.
"""

from servicewire.evolution.generate.asyncapi import build_asyncapi
from servicewire.evolution.generate.html import render_html
from servicewire.messaging.channels import ChannelUse

__all__ = ["ChannelUse", "build_asyncapi", "render_html"]

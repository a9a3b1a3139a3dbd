"""One-way notification: a command that expects no reply.

The sender writes the command to its outbox in its own transaction; the relay delivers
it; the receiver handles it once (its inbox removes duplicates). Nothing comes back.
"""

from __future__ import annotations

import asyncio
import uuid

from servicewire import Command, Context, Service


class SendWelcomeEmail(
    Command,
    name="example.mail.SendWelcomeEmail",
    version="1.0.0",
    channel="example-mail",
    key="consumer_id",
):
    consumer_id: str
    address: str


async def main() -> list[str]:
    broker = f"memory://{uuid.uuid4().hex}"
    sent_mail: list[str] = []

    mailer = Service("mailer", transport=broker)

    @mailer.handles(SendWelcomeEmail)
    async def send_welcome(cmd: SendWelcomeEmail, ctx: Context) -> None:
        sent_mail.append(cmd.address)  # a real handler would record this in ctx.session

    signup = Service("signup", transport=broker)
    async with mailer, signup:
        await signup.send(SendWelcomeEmail(consumer_id="c-1", address="ada@example.com"))
        for _ in range(200):
            if sent_mail:
                break
            await asyncio.sleep(0.01)
    print("mailer sent:", sent_mail)
    return sent_mail


if __name__ == "__main__":
    asyncio.run(main())

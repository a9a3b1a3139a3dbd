"""The web console: a read-only page over journals, outboxes and dead-letter channels.

    servicewire console --db sqlite:///order.db --db sqlite:///consumer.db \\
        --transport amqp://guest:guest@127.0.0.1/ --port 8090

or from code (a test, an embedded demo)::

    state = ConsoleState(database_urls, transport)
    await state.start()
    app = create_console_app(state)        # serve with uvicorn
    ...
    await state.stop()

It shows the services and their channels and groups (from the message journal), the
outbox backlog and relay lag of each database, the dead letters with their reasons,
and the sequence diagram of any message chain, refreshed live. Replaying a dead letter,
after a confirmation, is its only action.
"""

from servicewire.console.app import create_console_app
from servicewire.console.data import ConsoleState

__all__ = ["ConsoleState", "create_console_app"]

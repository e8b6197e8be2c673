"""The mailbox wire protocol, public for clients of a running arbiter (``pulsar-shell --attach``,
the dashboard): the sans-IO :class:`Connection` (HMAC handshake, length-prefixed frames), its
asyncio adapter :class:`MailboxProtocol`, and the message :class:`Envelope`.

Most code talks to actors with :func:`pulsar.send` and :func:`pulsar.connect` instead.
"""

from __future__ import annotations

from ._mailbox import (
    HELLO,
    REPLY,
    REQUEST,
    Connection,
    Envelope,
    Frame,
    MailboxProtocol,
    Role,
    dumps,
    loads,
)

__all__ = [
    "HELLO",
    "REPLY",
    "REQUEST",
    "Connection",
    "Envelope",
    "Frame",
    "MailboxProtocol",
    "Role",
    "dumps",
    "loads",
]

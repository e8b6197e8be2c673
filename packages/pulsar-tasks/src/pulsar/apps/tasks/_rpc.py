"""``TaskQueueRpc``: JSON-RPC methods over a task backend (placeholder until pulsar-rpc lands)."""

from __future__ import annotations

__all__ = ["TaskQueueRpc"]


class TaskQueueRpc:
    """Mixin placeholder (see the package README)."""

"""The settings of ``pulsar-rpc`` (``app = "rpc"``), declared once like the core ones.

A :class:`~pulsar.apps.rpc.JSONRPC` handler reads each limit, in this order, from: the keyword
given to its constructor, the configuration of the pulsar actor serving the request (when that
configuration includes the ``rpc`` settings, as with :class:`~pulsar.Application` subclasses
whose ``cfg_apps`` contain ``"rpc"``), then the default declared here. So the same handler works
behind any WSGI server, and in a pulsar application the limits come from the command line,
the config file or ``PULSAR_RPC_*`` environment variables.
"""

from __future__ import annotations

import argparse

from pulsar import Setting
from pulsar.validators import (
    validate_bool,
    validate_non_negative_number,
    validate_positive_int,
)

__all__ = [
    "RPC",
    "RpcErrorDetails",
    "RpcMaxBatch",
    "RpcMaxBody",
    "RpcThreadWorkers",
    "RpcTimeout",
    "validate_bool",
    "validate_positive_int",
    "validate_non_negative_number",
]

RPC = "JSON-RPC"


class RpcTimeout(Setting):
    name = "rpc_timeout"
    app = "rpc"
    section = RPC
    flags = ["--rpc-timeout"]
    meta = "SECONDS"
    default = 30.0
    validator = validate_non_negative_number
    desc = "Seconds one JSON-RPC call may run before its caller gets an error; 0: no limit."
    doc = """
        Past the limit the call's response is the error -32000 "Call timed out" and the other
        calls of the batch are answered as usual. An `async def` method is cancelled; a plain
        method keeps its thread until it returns (Python cannot interrupt a thread), so a
        method that hangs for ever occupies one of the `rpc_thread_workers` threads.
        """


class RpcMaxBatch(Setting):
    name = "rpc_max_batch"
    app = "rpc"
    section = RPC
    flags = ["--rpc-max-batch"]
    meta = "INT"
    default = 1000
    validator = validate_positive_int
    desc = "Most calls in one JSON-RPC batch; a larger batch is answered with error -32600."


class RpcMaxBody(Setting):
    name = "rpc_max_body"
    app = "rpc"
    section = RPC
    flags = ["--rpc-max-body"]
    meta = "BYTES"
    default = 1024 * 1024
    default_doc = "`1048576` (1 MiB)"
    validator = validate_positive_int
    desc = "Largest JSON-RPC request body in bytes; a larger one gets HTTP 413."


class RpcThreadWorkers(Setting):
    name = "rpc_thread_workers"
    app = "rpc"
    section = RPC
    flags = ["--rpc-thread-workers"]
    meta = "INT"
    default = 16
    validator = validate_positive_int
    desc = "Threads of each handler's pool running plain (not async) rpc methods."
    doc = """
        Plain methods run on this pool so that the calls of a batch run concurrently and
        `rpc_timeout` applies to them. With `rpc_timeout` 0, a single call to a plain method
        runs directly in the thread of the WSGI server instead.
        """


class RpcErrorDetails(Setting):
    name = "rpc_error_details"
    app = "rpc"
    section = RPC
    flags = ["--rpc-error-details"]
    action = argparse.BooleanOptionalAction
    default = False
    validator = validate_bool
    desc = "Put the exception type and text in the data of -32603 errors (off: logged only)."

"""The public surface of ``pulsar`` is pinned: changing it is a deliberate act."""

from __future__ import annotations

import pytest

import pulsar

EXPECTED = {
    "__version__",
    # actors
    "Actor",
    "ActorBase",
    "ActorProxy",
    "ActorState",
    "Application",
    "ImportSpec",
    "Arbiter",
    "ExitCode",
    "ExitInfo",
    "Monitor",
    "MonitorState",
    "MultiApp",
    "Request",
    "arbiter",
    "command",
    "CommandRole",
    "get_actor",
    "get_arbiter",
    "link",
    "send",
    "send_threadsafe",
    "spawn",
    "connect",
    "Client",
    # config
    "Config",
    "Setting",
    "parse_address",
    # async helpers
    "AlreadyCalledError",
    "Deferred",
    "async_while",
    "chain_future",
    "maybe_async",
    "multi_async",
    "new_event_loop",
    # errors
    "ActorNotFound",
    "ActorStopped",
    "AuthenticationError",
    "CommandError",
    "CommandNotFound",
    "ConfigError",
    "ConnectError",
    "HaltServer",
    "MailboxError",
    "ProtocolError",
    "PulsarError",
    "RemoteError",
    "SerializationError",
    "SpawnError",
}


def test_public_names() -> None:
    assert set(pulsar.__all__) == EXPECTED
    for name in pulsar.__all__:
        assert hasattr(pulsar, name), name


def test_errors_share_one_base_and_pickle() -> None:
    import pickle

    errors = [
        pulsar.ConfigError("bad", "workers"),
        pulsar.RemoteError("KeyError", "x", "tb"),
        pulsar.ActorNotFound("nobody"),
        pulsar.SerializationError("nope"),
        pulsar.AlreadyCalledError("fired twice"),
    ]
    for err in errors:
        assert isinstance(err, pulsar.PulsarError)
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err) and str(again) == str(err)
    halt = pickle.loads(pickle.dumps(pulsar.HaltServer("bye", 3)))
    assert halt.exit_code == 3 and not isinstance(halt, Exception)


def test_validators_module() -> None:
    from pulsar import validators

    assert len(validators.__all__) == 20  # 19 validators and declare_app
    for name in validators.__all__:
        assert callable(getattr(validators, name)), name
    assert validators.validate_positive_int("3") == 3
    with pytest.raises(ValueError, match="positive integer"):
        validators.validate_positive_int(0)

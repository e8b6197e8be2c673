"""The sans-IO message router: decisions for envelopes and peer events (no loop, no socket)."""

from __future__ import annotations

import pulsar
from pulsar import _mailbox as mb
from pulsar._routing import Deliver, Dropped, Forward, MessageRouter


def request(mid: int, sender: str, target: str, command: str = "ping", ack: bool = True):
    return mb.Envelope(mb.REQUEST, mid, sender, target, command, ack, mb.dumps(((), {})))


def reply(mid: int, sender: str, target: str, command: str = "ping"):
    return mb.Envelope(mb.REPLY, mid, sender, target, command, True, mb.dumps("pong"))


def router() -> MessageRouter:
    r = MessageRouter()
    r.add_local("arbiter")
    r.add_local("monitor-app")
    return r


def error_of(decision) -> Exception:
    assert isinstance(decision, Deliver | Forward)
    assert decision.envelope.kind == mb.REPLY and not decision.envelope.flag
    return mb.loads(decision.envelope.body)


def test_local_delivery_is_deferred_only_between_local_actors() -> None:
    r = router()
    r.add_peer("w1")
    r.connected("w1")
    (d,) = r.route(request(1, "w1", "arbiter"))
    assert d == Deliver("arbiter", d.envelope, False)
    (d,) = r.route(request(2, "monitor-app", "arbiter"))
    assert isinstance(d, Deliver) and d.deferred  # never runs inside its sender's call


def test_forward_keeps_the_raw_frame_and_tracks_the_request_until_its_reply() -> None:
    r = router()
    r.add_peer("w1")
    assert r.connected("w1") == []
    env = request(7, "arbiter", "w1")
    (d,) = r.route(env, b"raw-frame")
    assert d == Forward("w1", env, b"raw-frame")
    assert r.inflight("w1") == 1 and r.inflight() == 1
    r.route(request(8, "arbiter", "w1", "count", ack=False))
    assert r.inflight("w1") == 1  # fire-and-forget is not awaited
    (d,) = r.route(reply(7, "w1", "arbiter"))
    assert isinstance(d, Deliver) and d.target == "arbiter"
    assert r.inflight("w1") == 0


def test_backlog_before_hello_is_flushed_in_order() -> None:
    r = router()
    r.add_peer("w1")
    assert r.route(request(1, "arbiter", "w1", "a")) == []
    assert r.route(request(2, "arbiter", "w1", "b")) == []
    assert not r.is_connected("w1")
    out = r.connected("w1")
    assert [d.envelope.command for d in out] == ["a", "b"]
    assert all(isinstance(d, Forward) for d in out) and r.inflight("w1") == 2


def test_exit_answers_in_flight_and_backlog_with_actor_stopped() -> None:
    r = router()
    r.add_peer("w1")
    r.add_peer("w2")
    r.connected("w1")
    r.route(request(1, "arbiter", "w1", "slow"))
    r.route(request(2, "w2", "w1", "slow"))  # from another peer: its answer is forwarded
    (d,) = r.exited("w1", "killed by SIGKILL")  # the answer to w2 waits in its backlog
    err = error_of(d)
    assert d.target == "arbiter"
    assert isinstance(err, pulsar.ActorStopped) and "killed by SIGKILL" in str(err)
    (d,) = r.connected("w2")  # w2 says hello: it gets the answer to its request
    assert isinstance(d, Forward) and isinstance(error_of(d), pulsar.ActorStopped)
    r.disconnected("w2")
    assert r.route(request(3, "arbiter", "w2", "queued")) == []
    (d,) = r.exited("w2", "exit code 3")
    assert isinstance(error_of(d), pulsar.ActorStopped) and d.target == "arbiter"
    # later requests to a gone actor: ActorStopped with the reason; unknown: ActorNotFound
    (d,) = r.route(request(4, "arbiter", "w1"))
    assert "exited (killed by SIGKILL)" in str(error_of(d))
    (d,) = r.route(request(5, "arbiter", "nobody"))
    assert isinstance(error_of(d), pulsar.ActorNotFound)
    (d,) = r.route(request(6, "arbiter", "nobody", "count", ack=False))
    assert isinstance(d, Dropped)
    assert r.route(reply(9, "arbiter", "nobody")) == []  # a reply for nobody is dropped silently


def test_lost_connection_queues_then_fails_in_flight() -> None:
    r = router()
    r.add_peer("w1")
    r.connected("w1")
    r.route(request(1, "arbiter", "w1"))
    r.disconnected("w1")
    assert r.route(request(2, "arbiter", "w1")) == []  # waits (the exit normally follows)
    (d,) = r.fail_inflight("w1", "lost its mailbox connection")
    assert "lost its mailbox connection" in str(error_of(d))
    assert r.fail_inflight("w1", "again") == []
    out = r.exited("w1", "normal")
    assert len(out) == 1 and out[0].envelope.id == 2  # the queued request is answered too

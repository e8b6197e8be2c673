"""The ``pulsar-tasks`` command line (a real process) and the TaskQueueRpc mixin."""

from __future__ import annotations

import io
import json

import tq_helpers as h
import tq_jobs  # noqa: F401

from pulsar.apps import rpc, tasks

cli = h.cli


def test_cli_queue_status_jobs_and_worker(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    out = cli("queue", "add", "a=1", "b=41", "--backend", url, "--modules", "tq_jobs")
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.strip()
    bad = cli("queue", "nope", "--backend", url, "--modules", "tq_jobs")
    assert bad.returncode == 2 and "unknown job 'nope'" in bad.stderr
    bad = cli("queue", "add", "oops", "--backend", url, "--modules", "tq_jobs")
    assert bad.returncode == 2 and "key=value" in bad.stderr
    table = cli("status", "--backend", url)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "JOB", "STATUS"]
    assert task_id in lines[1] and "QUEUED" in lines[1]
    worker = h.start_cli_worker(url)
    try:
        with tasks.connect_sync(url) as c:
            assert c.wait_for_task(task_id, timeout=20).result == 42
        one = cli("status", task_id, "--backend", url)
        assert "SUCCESS" in one.stdout and "42" in one.stdout
        jobs = cli("jobs", "--backend", url)
        assert "tick" in jobs.stdout and "every 1.0s" in jobs.stdout
        waited = cli("queue", "boom", "--arg", '"kaput"', "--backend", url, "--wait", "20")
        assert waited.returncode == 1 and "ValueError: kaput" in waited.stdout
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


class Api(tasks.TaskQueueRpc, rpc.JSONRPC):
    """Tasks over JSON-RPC."""


def call(handler, method, **params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    return json.loads(b"".join(handler(environ, lambda *a: None)))


def test_rpc_mixin(backend_url) -> None:
    api = Api(task_backend=backend_url)
    queued = call(api, "queue_task", jobname="add", args=[1, 2])["result"]
    assert queued["status"] == "QUEUED" and queued["args"] == [1, 2]
    assert call(api, "get_task", id=queued["id"])["result"]["id"] == queued["id"]
    assert [t["id"] for t in call(api, "list_tasks", status="QUEUED")["result"]] == [queued["id"]]
    err = call(api, "queue_task", jobname="nope")["error"]
    assert err["code"] == -32602 and "unknown job" in err["message"]
    err = call(api, "queue_task", jobname="add", args="x")["error"]
    assert err["code"] == -32602
    assert "add" in call(api, "job_list")["result"]
    assert "tick" in call(api, "next_scheduled")["result"]
    timeout = call(api, "wait_for_task", id=queued["id"], timeout=0.1)["error"]
    assert "not done" in timeout["message"]
    assert call(api, "revoke_task", id=queued["id"])["result"] == "REVOKED"
    assert call(api, "wait_for_task", id=queued["id"], timeout=1)["result"]["status"] == "REVOKED"


def test_rpc_operator_calls(backend_url) -> None:
    api = Api(task_backend=backend_url)
    a = call(api, "queue_task", jobname="add", args=[1, 2], queue="ops")["result"]
    b = call(api, "queue_task", jobname="add", args=[3, 4], queue="ops")["result"]
    other = call(api, "queue_task", jobname="add", args=[5, 6])["result"]
    assert call(api, "purge_queue", queue="ops")["result"] == 2
    for t in (a, b):
        got = call(api, "get_task", id=t["id"])["result"]
        assert got["status"] == "REVOKED" and got["error"] == "purged"
    assert call(api, "get_task", id=other["id"])["result"]["status"] == "QUEUED"  # another queue
    assert call(api, "purge_queue", queue="")["error"]["code"] == -32602
    assert call(api, "requeue_task", id=a["id"])["result"] is True
    assert call(api, "get_task", id=a["id"])["result"]["status"] == "QUEUED"
    err = call(api, "requeue_task", id=other["id"])["error"]  # pending: nothing to requeue
    assert err["code"] == -32602 and "QUEUED" in err["message"]
    assert call(api, "requeue_task", id="no-such-task")["result"] is False
    revoked = call(api, "list_tasks", status="REVOKED", since=0)["result"]
    assert [t["id"] for t in revoked] == [b["id"]]
    assert call(api, "list_tasks", status="REVOKED", since=2**40)["result"] == []
    assert call(api, "list_tasks", since="yesterday")["error"]["code"] == -32602
    assert call(api, "workers")["result"] == []  # no worker runs
    counts = call(api, "task_counts")["result"]
    assert counts["QUEUED"] == 2 and counts["REVOKED"] == 1


def test_cli_status_with_nothing_matching_prints_an_empty_table(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    out = cli("status", "--backend", url)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    headers = "ID JOB STATUS TRIES QUEUED FINISHED RESULT / ERROR"
    assert out.stdout.split() == headers.split()
    out = cli("status", "--status", "FAILURE", "--backend", url)
    assert out.returncode == 0 and out.stdout.startswith("ID"), out.stderr


def test_cli_status_json(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/j.db"
    out = cli("status", "--json", "--backend", url)
    assert out.returncode == 0 and json.loads(out.stdout) == [], out.stderr
    queued = cli("queue", "add", "a=1", "b=2", "--backend", url, "--modules", "tq_jobs")
    task_id = queued.stdout.strip()
    listed = json.loads(cli("status", "--json", "--backend", url).stdout)
    assert [(t["id"], t["name"], t["status"]) for t in listed] == [(task_id, "add", "QUEUED")]
    one = json.loads(cli("status", task_id, "--json", "--backend", url).stdout)
    assert one["id"] == task_id and one["kwargs"] == {"a": 1, "b": 2}
    missing = cli("status", "nope", "--json", "--backend", url)
    assert missing.returncode == 1 and "no task" in missing.stderr


def test_cli_bogus_status_lists_the_valid_states(tmp_path) -> None:
    out = cli("status", "--status", "bogus", "--backend", f"sqlite:///{tmp_path}/t.db")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    for state in ("QUEUED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"):
        assert state in out.stderr


def test_cli_every_subcommand_help_explains_its_arguments() -> None:
    for command, words in {
        "queue": ["JOB", "key=value", "--arg", "--countdown", "--queue", "--wait", "JSON"],
        "status": ["ID", "--status", "--limit", "SUCCESS"],
        "jobs": ["--backend", "--modules", "docstring"],
    }.items():
        out = cli(command, "--help")
        assert out.returncode == 0, out.stderr
        for word in words:
            assert word in out.stdout, (command, word, out.stdout)
        assert "sqlite:///" in out.stdout  # --backend explains the URL


def test_cli_jobs_shows_each_jobs_own_docstring(tmp_path) -> None:
    out = cli("jobs", "--backend", f"sqlite:///{tmp_path}/t.db", "--modules", "tq_jobs")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert "Add two numbers." in lines["add"]
    assert "A class-declared job." in lines["multiply"]  # the class's, not Job.run's
    assert "override" not in out.stdout

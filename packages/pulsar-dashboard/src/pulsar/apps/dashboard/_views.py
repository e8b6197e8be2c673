"""The pages: server-rendered HTML from a snapshot (readable without JavaScript).

Each ``render_*`` function returns the inner HTML of a page's ``<main>``; :func:`layout` wraps
it in the document (navigation, styles, the small script that refreshes ``<main>`` in place).
Every value from the application is escaped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from ._charts import line_chart, rate_chart
from ._runtimes import quantile

__all__ = [
    "STYLE",
    "SCRIPT",
    "layout",
    "render_actor",
    "render_actors",
    "render_login",
    "render_servers",
    "render_task",
    "render_tasks",
]

STATES = ("QUEUED", "STARTED", "RETRY", "DEFERRED", "SUCCESS", "FAILURE", "REVOKED")

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d232a;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#cfe3ff;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .who{margin-left:auto;font-size:12px;color:#aab}
main{padding:12px 16px}h1{font-size:18px;margin:6px 0 10px}h2{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;background:#fff;margin-bottom:10px}
th,td{border:1px solid #dde1e6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.monitor td{background:#f3f6fb;font-weight:600}tr.arbiter td{background:#e9eef7;font-weight:600}
.st{padding:0 5px;border-radius:3px;font-size:12px;background:#ddd}
.st-RUNNING,.st-SUCCESS{background:#c9f0d3}.st-FAILURE,.st-CLOSED{background:#f7c9c9}
.st-STARTED,.st-STARTING{background:#cfe3ff}.st-RETRY,.st-STOPPING{background:#ffe7b3}
.st-REVOKED{background:#e2d9f3}.st-QUEUED,.st-DEFERRED{background:#eee}
pre{background:#fff;border:1px solid #dde1e6;padding:8px;overflow:auto;max-height:480px}
.flash{background:#fff6cc;border:1px solid #e6d27a;padding:6px 10px;margin-bottom:10px}
.error{background:#fde2e2;border:1px solid #e9a5a5;padding:6px 10px;margin-bottom:10px}
form.inline{display:inline}button{cursor:pointer}
.chart-bg{fill:#fff;stroke:#dde1e6}.chart-line{stroke:#2f6fdb;stroke-width:1.5}
.chart-line-1{stroke:#e08a00}.chart-line-2{stroke:#c0392b}.chart-key-0{fill:#2f6fdb}
.chart-key-1{fill:#e08a00}.chart-key-2{fill:#c0392b}
.chart-axis{font-size:10px;fill:#667}.chart-title{font-size:11px;fill:#333;font-weight:600}
.tree{margin:0;padding-left:18px}.muted{color:#778}
"""

# Refreshes <main> in place: fetches the same URL as JSON ({"main": html}) every interval.
SCRIPT = """
(function(){
  var main=document.getElementById('live');if(!main)return;
  var every=parseFloat(main.getAttribute('data-interval')||'1')*1000;
  function tick(){
    fetch(location.pathname+location.search,{headers:{'Accept':'application/json'},
      credentials:'same-origin'}).then(function(r){return r.ok?r.json():null})
    .then(function(d){if(d&&typeof d.main==='string'){main.innerHTML=d.main;
      main.setAttribute('data-updated',String(d.updated));}})
    .catch(function(){}).then(function(){setTimeout(tick,every)});
  }
  setTimeout(tick,every);
})();
"""


def layout(
    title: str,
    main: str,
    *,
    active: str,
    tasks: bool,
    interval: float,
    updated: float,
    flash: str | None = None,
    logged_in: bool = False,
    token_set: bool = False,
    before: str = "",
) -> str:
    """The whole HTML document of a page."""
    nav = [("actors", "/", "Actors"), ("servers", "/servers", "Servers")]
    if tasks:
        nav.append(("tasks", "/tasks", "Tasks"))
    nav.append(("metrics", "/metrics", "Metrics"))
    links = "".join(
        f'<a href="{href}"{" class=on" if key == active else ""}>{label}</a>'
        for key, href, label in nav
    )
    who = ""
    if token_set:
        who = (
            '<span class="who">signed in</span>'
            if logged_in
            else '<span class="who"><a href="/login">sign in</a> to act</span>'
        )
    note = f'<div class="flash" id="flash">{escape(flash)}</div>' if flash else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · pulsar dashboard</title><style>{STYLE}</style></head><body>"
        f"<header><strong>pulsar</strong>{links}{who}</header><main>{note}{before}"
        f'<div id="live" data-interval="{interval:g}" data-updated="{updated:.3f}">{main}</div>'
        f'</main><script src="/static/dashboard.js"></script></body></html>'
    )


def _state(state: Any) -> str:
    s = escape(str(state))
    return f'<span class="st st-{s}">{s}</span>'


def _num(value: Any) -> str:
    return "" if value is None else escape(f"{value:,}" if isinstance(value, int) else str(value))


def _mem(value: Any) -> str:
    if value is None:
        return ""
    return f"{value / (1024 * 1024):.1f} MiB"


def _dur(seconds: Any) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{seconds:.0f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _pct(value: Any) -> str:
    return "" if value is None else f"{value:.1f}%"


def _disconnected(snap: dict[str, Any]) -> str:
    if snap.get("connected"):
        return ""
    return (
        f'<div class="error" id="disconnected">not connected to {escape(str(snap.get("attach")))}: '
        f"{escape(str(snap.get('error')))}</div>"
    )


def _button(action: str, label: str, *, confirm: str | None = None) -> str:
    onsubmit = f' onsubmit="return confirm({escape(json.dumps(confirm))})"' if confirm else ""
    return (
        f'<form class="inline" method="post" action="{escape(action)}"{onsubmit}>'
        f'<button type="submit">{escape(label)}</button></form>'
    )


def _actor_row(actor: dict[str, Any], cls: str, served: str, extra: str = "") -> str:
    aid = str(actor["aid"])
    indent = {"arbiter": "", "monitor": "&nbsp;&nbsp;", "worker": "&nbsp;&nbsp;&nbsp;&nbsp;└ "}
    return (
        f'<tr class="{cls}" data-aid="{escape(aid)}" data-kind="{escape(str(actor["kind"]))}">'
        f'<td>{indent.get(cls, "")}<a href="/actors/{quote(aid)}">{escape(aid)}</a></td>'
        f"<td>{escape(str(actor['name']))}</td><td class=n>{_num(actor['pid'])}</td>"
        f"<td>{_state(actor['state'])}</td><td class=n>{_dur(actor['uptime'])}</td>"
        f"<td class=n>{extra}</td><td class=n>{_pct(actor['cpu_percent'])}</td>"
        f"<td class=n>{_mem(actor['memory_rss'])}</td><td class=n>{served}</td></tr>"
    )


def render_actors(snap: dict[str, Any]) -> str:
    """The live tree: arbiter → monitors → workers."""
    out = [_disconnected(snap), "<h1>Actors</h1>"]
    if not snap.get("arbiter"):
        return "".join(out)
    arb = snap["arbiter"]
    n_workers = sum(len(a["workers"]) for a in snap["apps"])
    out.append(
        f"<p>Attached to <code>{escape(str(snap.get('address')))}</code> · "
        f'{len(snap["apps"])} application(s), <span id="worker-count">{n_workers}</span> '
        f"worker(s) · states: "
        + ", ".join(f"{escape(k)} {v}" for k, v in sorted(snap["states"].items()))
        + "</p>"
    )
    out.append(
        '<table id="actors"><thead><tr><th>aid</th><th>name</th><th>pid</th><th>state</th>'
        "<th>uptime</th><th>restarts / crashes</th><th>CPU</th><th>memory</th>"
        "<th>served</th></tr></thead><tbody>"
    )
    out.append(_actor_row(arb, "arbiter", ""))
    for app in snap["apps"]:
        served = ""
        if app["is_server"]:
            served = f"{app['requests_total']:,} requests"
        elif app["is_tasks"]:
            served = f"{app['tasks_total']:,} tasks"
        extra = f"{app['restarts']} / {app['crashes']}"
        out.append(_actor_row(app, "monitor", served, extra))
        for w in app["workers"]:
            parts = []
            if w["requests"] is not None:
                parts.append(f"{w['requests']:,} requests")
            if w["tasks_processed"] is not None:
                parts.append(f"{w['tasks_processed']:,} tasks")
            out.append(_actor_row(w, "worker", ", ".join(parts)))
    out.append("</tbody></table>")
    if snap.get("guests"):
        out.append(
            "<h2>Guests</h2><table><tr><th>aid</th><th>name</th><th>pid</th></tr>"
            + "".join(
                f"<tr><td>{escape(str(g['aid']))}</td><td>{escape(str(g['name']))}</td>"
                f"<td class=n>{_num(g['pid'])}</td></tr>"
                for g in snap["guests"]
            )
            + "</table>"
        )
    return "".join(out)


def render_actor(snap: dict[str, Any], aid: str, info: dict[str, Any] | None) -> str:
    """One actor: its summary, stop/recycle buttons and its full ``info``."""
    out = [_disconnected(snap), f"<h1>Actor {escape(aid)}</h1>"]
    if info is None:
        out.append('<div class="error">no such actor (it has exited?)</div>')
        return "".join(out)
    out.append(
        f"<p>{escape(str(info.get('name')))} · {escape(str(info.get('kind')))} · pid "
        f"{_num(info.get('pid'))} · {_state(info.get('state'))} · up {_dur(info.get('uptime'))}</p>"
    )
    if info.get("kind") == "worker":
        q = quote(aid)
        out.append(
            "<p>"
            + _button(f"/actors/{q}/stop", "Stop", confirm=f"Stop worker {aid}?")
            + " "
            + _button(f"/actors/{q}/recycle", "Recycle", confirm=f"Recycle worker {aid}?")
            + ' <span class="muted">stop: the monitor replaces it; recycle: a new worker '
            "starts first, then this one stops gracefully</span></p>"
        )
    out.append(
        '<h2>info</h2><pre id="info">'
        f"{escape(json.dumps(info, indent=2, sort_keys=True, default=str))}</pre>"
    )
    return "".join(out)


def render_servers(snap: dict[str, Any]) -> str:
    """Per-application request counters, error shares, latency percentiles and charts."""
    out = [_disconnected(snap), "<h1>Servers</h1>"]
    servers = [a for a in snap.get("apps") or () if a.get("is_server")]
    if not servers:
        out.append("<p>No server application.</p>")
    for app in servers:
        out.append(
            f"<h2>{escape(app['app'])}</h2><p>{' '.join(escape(a) for a in app['addresses'])} · "
            f'<span class="requests-total">{app["requests_total"]:,}</span> requests · '
            f"{app['request_rate']:.1f} req/s (10 s) · "
            f"{app['connections_open']} open connections</p>"
        )
        out.append(
            rate_chart([(t, r) for t, r, _ in app["history"]], title=f"{app['app']}: requests/s")
        )
        out.append(_http_part(app))
        out.append(
            "<table><tr><th>worker</th><th>pid</th><th>state</th><th>requests</th>"
            "<th>open connections</th><th>accepted</th><th>idle closed</th><th>aborted</th></tr>"
            + "".join(
                f"<tr><td>{escape(str(w['aid']))}</td><td class=n>{_num(w['pid'])}</td>"
                f"<td>{escape(str(w.get('server_state') or ''))}</td>"
                f"<td class=n>{_num(w['requests'])}</td>"
                f"<td class=n>{_num(w['connections'])}</td>"
                f"<td class=n>{_num(w.get('accepted'))}</td>"
                f"<td class=n>{_num(w.get('idle_closed'))}</td>"
                f"<td class=n>{_num(w.get('aborted'))}</td></tr>"
                for w in app["workers"]
            )
            + "</table>"
        )
    return "".join(out)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:,.0f} ms"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _http_part(app: dict[str, Any]) -> str:
    """Error shares and latency percentiles of one HTTP application (10 s, and charts)."""
    http = app.get("http")
    if not http:
        return ""
    win, name = http["window"], app["app"]
    statuses = ", ".join(f"{escape(str(code))}: {n:,}" for code, n in http["statuses"].items())
    out = [
        f'<p class="http-stats">last 10 s: {win["responses"]:,} responses · 5xx '
        f'<span class="errors-5xx">{_share(win["errors_5xx"])}</span> · 4xx '
        f'<span class="errors-4xx">{_share(win["errors_4xx"])}</span> · latency p50 '
        f'<span class="p50">{_ms(win["p50"])}</span> · p95 <span class="p95">{_ms(win["p95"])}'
        f'</span> · p99 <span class="p99">{_ms(win["p99"])}</span></p>',
        f'<p class="muted">responses by status since the start: <span class="statuses">'
        f"{statuses or 'none yet'}</span> · {http['latency']['count']:,} timed</p>",
    ]
    series = http["series"]
    out.append(
        line_chart(
            [
                ("5xx", [(t, e5) for t, e5, _, _, _, _ in series]),
                ("4xx", [(t, e4) for t, _, e4, _, _, _ in series]),
            ],
            title=f"{name}: errors (% of responses)",
            unit="%",
        )
    )
    out.append(
        line_chart(
            [
                ("p50", [(t, p) for t, _, _, p, _, _ in series]),
                ("p95", [(t, p) for t, _, _, _, p, _ in series]),
                ("p99", [(t, p) for t, _, _, _, _, p in series]),
            ],
            title=f"{name}: latency",
            unit=" ms",
            scale=1000.0,
        )
    )
    return "".join(out)


def render_task_filters(filters: dict[str, str], queues: Iterable[str], jobs: Iterable[str]) -> str:
    """The filter form of the task list (outside the refreshed part, so typing is not lost)."""

    def select(name: str, options: Iterable[str]) -> str:
        opts = ['<option value="">any</option>'] + [
            f"<option{' selected' if filters.get(name) == o else ''}>{escape(o)}</option>"
            for o in options
        ]
        return f'<label>{name} <select name="{name}">{"".join(opts)}</select></label> '

    return (
        '<form method="get" action="/tasks" id="filters">'
        + select("status", STATES)
        + select("queue", queues)
        + select("name", jobs)
        + '<button type="submit">Filter</button></form>'
    )


def render_tasks(
    snap: dict[str, Any], tasks: Sequence[dict[str, Any]], filters: dict[str, str]
) -> str:
    """Counts by state and queue, throughput, the filtered list."""
    info = snap.get("tasks") or {}
    out = [_disconnected(snap), "<h1>Tasks</h1>"]
    if info.get("error"):
        out.append(f'<div class="error">{escape(info["error"])}</div>')
    counts = info.get("counts") or {}
    out.append(
        f"<p>backend <code>{escape(str(info.get('backend')))}</code> · "
        f"{len(info.get('workers') or ())} live task worker(s) · "
        f"{info.get('rate', 0.0):.1f} tasks/s</p>"
        '<table id="counts"><tr>'
        + "".join(f"<th>{s}</th>" for s in STATES)
        + "</tr><tr>"
        + "".join(
            f'<td class=n data-state="{s}"><a href="/tasks?{urlencode({"status": s})}">'
            f"{counts.get(s, 0):,}</a></td>"
            for s in STATES
        )
        + "</tr></table>"
    )
    out.append(_queue_table(snap, info))
    latency = info.get("latency") or ()
    out.append(
        '<div class="charts">'
        + rate_chart(
            [(t, p) for t, p, _ in info.get("history") or ()], title="tasks run/s (workers)"
        )
        + line_chart(
            [
                ("p50", [(t, p50) for t, p50, _ in latency]),
                ("p95", [(t, p95) for t, _, p95 in latency]),
            ],
            title="run time (10 s window)",
            unit=" ms",
            scale=1000.0,
        )
        + "</div>"
    )
    shown = ", ".join(f"{k}={v}" for k, v in filters.items() if v) or "all"
    out.append(
        f"<h2>Recent tasks ({escape(shown)}, {len(tasks)})</h2>"
        + _runtimes(tasks)
        + '<table id="tasks"><tr><th>id</th><th>job</th><th>queue</th><th>state</th>'
        "<th>attempts</th><th>progress</th><th>run time</th><th>error</th></tr>"
    )
    for t in tasks:
        progress = t.get("progress")
        out.append(
            f'<tr data-id="{escape(t["id"])}" data-status="{escape(str(t["status"]))}">'
            f'<td><a href="/tasks/{quote(t["id"])}">{escape(t["id"][:12])}…</a></td>'
            f"<td>{escape(str(t['name']))}</td><td>{escape(str(t['queue']))}</td>"
            f"<td>{_state(t['status'])}</td><td class=n>{_num(t.get('attempts'))}</td>"
            f"<td class=n>{'' if progress is None else f'{progress:.0%}'}</td>"
            f"<td class=n>{_seconds(t.get('runtime'))}</td>"
            f"<td>{escape(str(t.get('error') or ''))[:120]}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _queue_table(snap: dict[str, Any], info: dict[str, Any]) -> str:
    """Per queue: tasks waiting, records by state, and the workers' runs with their p50 / p95
    run time (every run the dashboard has seen, from the histograms)."""
    waiting = info.get("queues") or {}
    by_queue = info.get("by_queue") or {}
    runs: dict[str, list[float]] = {}
    buckets: list[float] = []
    for app in snap.get("apps") or ():
        rt = app.get("run_time") or {}
        buckets = rt.get("buckets") or buckets
        for queue, h in (rt.get("queues") or {}).items():
            have = runs.get(queue)
            counts = [float(c) for c in h["counts"]]
            runs[queue] = (
                counts if have is None else [a + b for a, b in zip(have, counts, strict=True)]
            )
    rows = []
    for queue in sorted({*waiting, *by_queue, *runs}):
        states = by_queue.get(queue) or {}
        ran = runs.get(queue)
        p50 = p95 = None
        if ran:
            p50, p95 = quantile(0.5, buckets, ran), quantile(0.95, buckets, ran)
        rows.append(
            f'<tr data-queue="{escape(queue)}"><td>{escape(queue)}</td>'
            f"<td class=n>{int(waiting.get(queue, 0)):,}</td>"
            + "".join(
                f'<td class=n data-state="{s}">{int(states.get(s, 0)):,}</td>' for s in STATES
            )
            + f'<td class=n data-runs="">{int(ran[-1]) if ran else 0:,}</td>'
            f"<td class=n>{_seconds(p50)}</td><td class=n>{_seconds(p95)}</td></tr>"
        )
    return (
        '<table id="queues"><tr><th>queue</th><th>waiting</th>'
        + "".join(f"<th>{s}</th>" for s in STATES)
        + "<th>runs</th><th>run p50</th><th>run p95</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _field(name: str, value: Any) -> str:
    if name.startswith("time_") or name in ("eta", "expires"):
        try:
            when = dt.datetime.fromtimestamp(float(value), dt.UTC)
            return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
        except (TypeError, ValueError, OverflowError):
            pass
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _seconds(value: Any) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _runtimes(tasks: Sequence[dict[str, Any]]) -> str:
    """p50 / p95 / max run time of the listed tasks that finished."""
    times = sorted(t["runtime"] for t in tasks if t.get("runtime") is not None)
    if not times:
        return ""

    def pct(q: float) -> float:
        return times[min(len(times) - 1, round(q * (len(times) - 1)))]

    return (
        f'<p id="runtimes">run time of the {len(times)} finished task(s) listed: '
        f"p50 {_seconds(pct(0.5))} · p95 {_seconds(pct(0.95))} · max {_seconds(times[-1])}</p>"
    )


def _tree(node: dict[str, Any]) -> str:
    label = ""
    if node.get("kind"):
        label = f"<strong>{escape(node['kind'])}</strong> "
    if node.get("id"):
        label += (
            f'<a href="/tasks/{quote(node["id"])}">'
            f"{escape(str(node.get('name') or node['id']))}</a> "
            f"{_state(node.get('status'))} "
            f"<span class=muted>{escape(str(node.get('error') or ''))}</span>"
        )
    kids = "".join(_tree(m) for m in node.get("members") or ())
    return f"<li>{label}{f'<ul class=tree>{kids}</ul>' if kids else ''}</li>"


def render_task(snap: dict[str, Any], record: dict[str, Any] | None, task_id: str) -> str:
    """One task's record: fields, args, result, traceback, progress, workflow tree, buttons."""
    out = [_disconnected(snap), f"<h1>Task {escape(task_id)}</h1>"]
    if record is None:
        out.append('<div class="error">no such task (unknown, or its record expired)</div>')
        return "".join(out)
    status = str(record.get("status"))
    q = quote(task_id)
    buttons = []
    if status in ("FAILURE", "REVOKED"):
        buttons.append(_button(f"/tasks/{q}/retry", "Retry"))
    if status in ("QUEUED", "STARTED", "RETRY", "DEFERRED"):
        buttons.append(_button(f"/tasks/{q}/revoke", "Revoke", confirm=f"Revoke task {task_id}?"))
    out.append(
        f"<p>{escape(str(record.get('name')))} · queue {escape(str(record.get('queue')))} · "
        f'<span id="task-status">{_state(status)}</span> · attempts {_num(record.get("attempts"))}'
        f" {' '.join(buttons)}</p>"
    )
    fields = (
        "worker",
        "time_queued",
        "time_started",
        "time_finished",
        "eta",
        "expires",
        "priority",
        "workflow",
        "depends_on",
    )
    out.append(
        "<table>"
        + "".join(
            f"<tr><th>{f}</th><td>{escape(_field(f, record.get(f)))}</td></tr>"
            for f in fields
            if record.get(f) is not None
        )
        + "</table>"
    )
    if record.get("progress") is not None:
        out.append(
            f'<p>progress <progress max="1" value="{record["progress"]}"></progress> '
            f"{record['progress']:.0%} {escape(json.dumps(record.get('meta'), default=str))}</p>"
        )
    out.append(
        f'<h2>args</h2><pre id="args">{escape(json.dumps(record.get("args"), default=str))}</pre>'
        f"<h2>kwargs</h2><pre>{escape(json.dumps(record.get('kwargs'), default=str))}</pre>"
    )
    if status == "SUCCESS":
        out.append(
            '<h2>result</h2><pre id="result">'
            f"{escape(json.dumps(record.get('result'), default=str))}</pre>"
        )
    if record.get("error"):
        out.append(f'<h2>error</h2><pre id="error">{escape(str(record["error"]))}</pre>')
    if record.get("traceback"):
        out.append(
            f'<h2>traceback</h2><pre id="traceback">{escape(str(record["traceback"]))}</pre>'
        )
    if record.get("tree"):
        out.append(f'<h2>workflow</h2><ul class="tree" id="workflow">{_tree(record["tree"])}</ul>')
    return "".join(out)


def render_login(error: str | None = None, next_url: str = "/") -> str:
    """The sign-in form (the token)."""
    err = f'<div class="error">{escape(error)}</div>' if error else ""
    return (
        f"<h1>Sign in</h1>{err}"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{escape(next_url)}">'
        '<label>token <input type="password" name="token" id="token" autofocus></label> '
        '<button type="submit" id="signin">Sign in</button></form>'
    )

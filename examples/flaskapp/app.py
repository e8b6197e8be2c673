"""A Flask application served by pulsar-wsgi.

    python examples/flaskapp/app.py                        # http://127.0.0.1:8060/
    python examples/flaskapp/app.py --bind 127.0.0.1:0 --workers 2
    python examples/flaskapp/app.py --help                 # every setting

Flask is an ordinary blocking WSGI application, so it runs on each worker's thread pool (the
default, ``--thread-workers 8``). The routes:

* ``GET /`` — an HTML page with a form;
* ``POST /greet`` — the form (``application/x-www-form-urlencoded``), answered in HTML;
* ``GET /api/items`` / ``GET /api/items/<id>`` — JSON (404 as JSON for an unknown id);
* ``POST /api/items`` — a JSON body in, the created item out (201, ``Location``);
* ``GET /api/info`` — what the server put in the WSGI environ (server software, worker pid).

Once the sockets are bound the arbiter logs ``wsgi: listening on <address>``. Ctrl-C stops it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flask import Flask, abort, jsonify, render_template_string, request, url_for

from pulsar.apps import wsgi

app = Flask(__name__)

_lock = threading.Lock()  # the thread pool serves requests concurrently
ITEMS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "name": "actor", "price": 1.5},
    2: {"id": 2, "name": "monitor", "price": 2.25},
}

PAGE = """<!doctype html>
<title>pulsar + flask</title>
<h1>{{ title }}</h1>
{% if name %}<p>Hello {{ name }}{% if lang %} ({{ lang }}){% endif %}!</p>{% endif %}
<form method="post" action="{{ url_for('greet') }}">
  <input name="name" placeholder="your name"> <input name="lang" placeholder="language">
  <button>greet</button>
</form>
"""


@app.get("/")
def index() -> str:
    return render_template_string(PAGE, title="Flask on pulsar-wsgi", name=None, lang=None)


@app.post("/greet")
def greet() -> str:
    name = request.form.get("name", "").strip()
    if not name:
        abort(400, "a name is required")
    return render_template_string(PAGE, title="Greetings", name=name, lang=request.form.get("lang"))


@app.get("/api/items")
def list_items() -> Any:
    with _lock:
        return jsonify(sorted(ITEMS.values(), key=lambda item: item["id"]))


@app.get("/api/items/<int:item_id>")
def get_item(item_id: int) -> Any:
    with _lock:
        item = ITEMS.get(item_id)
    if item is None:
        return jsonify(error="not found", id=item_id), 404
    return jsonify(item)


@app.post("/api/items")
def create_item() -> Any:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return jsonify(error="expected a JSON object with a 'name'"), 400
    with _lock:
        item = {"id": max(ITEMS, default=0) + 1, "name": data["name"], "price": data.get("price")}
        ITEMS[item["id"]] = item
    response = jsonify(item)
    response.status_code = 201
    response.headers["Location"] = url_for("get_item", item_id=item["id"])
    return response


@app.get("/api/info")
def info() -> Any:
    environ = request.environ
    return jsonify(
        server=environ.get("SERVER_SOFTWARE"),
        pid=os.getpid(),
        multithread=environ["wsgi.multithread"],
        multiprocess=environ["wsgi.multiprocess"],
        url_scheme=environ["wsgi.url_scheme"],
        remote_addr=request.remote_addr,
    )


def server(**params: Any) -> wsgi.WSGIServer:
    """The WSGI server of the Flask ``app`` (settings as keyword arguments)."""
    return wsgi.WSGIServer(callable=app, **params)


if __name__ == "__main__":
    server().start()

"""Hello world: the seed's WSGI application served by pulsar-wsgi.

    python examples/helloworld/hello.py                       # http://127.0.0.1:8060/
    python examples/helloworld/hello.py --bind 127.0.0.1:0    # port 0: any free port
    python examples/helloworld/hello.py --workers 4 --thread-workers 0
    python examples/helloworld/hello.py --help                # every setting

Every core setting (``--bind``, ``--workers``, ``--concurrency``, ``--keep-alive``,
``--cert-file``...) and every wsgi setting (``--thread-workers``, ``--max-body-size``...) is on
the command line. Once the sockets are bound the arbiter logs ``wsgi: listening on <address>``
(the real port when you asked for port 0). Ctrl-C stops it.
"""

from pulsar.apps import wsgi


def hello(environ, start_response):
    data = b"Hello World!\n"
    start_response("200 OK", [("Content-type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


if __name__ == "__main__":
    wsgi.WSGIServer(callable=hello).start()

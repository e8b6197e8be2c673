# the simplest request (RFC 9112 3)
requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.1",
        "headers": [(b"Host", b"example.com")],
        "body": b"",
        "path": "/",
        "query": "",
    }
]

# a percent-encoded path is decoded in PATH_INFO, the query is not
requests = [
    {
        "method": "GET",
        "target": b"/a%20b/c%2Fd?x=%20y",
        "version": "1.1",
        "headers": [(b"Host", b"x")],
        "body": b"",
        "path": "/a b/c/d",
        "query": "x=%20y",
    }
]

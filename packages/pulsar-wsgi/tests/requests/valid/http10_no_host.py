# HTTP/1.0 needs no Host (RFC 9112 3.2 applies to HTTP/1.1)
requests = [
    {
        "method": "GET",
        "target": b"/old",
        "version": "1.0",
        "headers": [],
        "body": b"",
        "keep_alive": False,
    }
]

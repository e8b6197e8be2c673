# HTTP/1.0 keep-alive on request
requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.0",
        "headers": [(b"Connection", b"keep-alive")],
        "body": b"",
        "keep_alive": True,
    }
]

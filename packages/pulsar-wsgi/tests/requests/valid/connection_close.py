# Connection: close ends the connection after the response (RFC 9112 9.6)
requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.1",
        "headers": [(b"Host", b"x"), (b"Connection", b"close")],
        "body": b"",
        "keep_alive": False,
    }
]

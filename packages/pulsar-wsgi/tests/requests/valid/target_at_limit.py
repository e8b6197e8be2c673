# a target of exactly limit_request_line bytes is accepted
settings = {"limit_request_line": 64}
requests = [
    {
        "method": "GET",
        "target": b"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "version": "1.1",
        "headers": [(b"Host", b"x")],
        "body": b"",
    }
]

# a field of limit_request_field_size bytes (name, ': ' and value) is accepted
settings = {"limit_request_field_size": 20}
requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.1",
        "headers": [(b"Host", b"x"), (b"X-Big", b"vvvvvvvvvvvvv")],
        "body": b"",
    }
]

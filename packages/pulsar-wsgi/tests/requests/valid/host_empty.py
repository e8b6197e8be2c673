# an empty Host is valid when the target has no authority (RFC 9110 7.2)
requests = [
    {"method": "GET", "target": b"/", "version": "1.1", "headers": [(b"Host", b"")], "body": b""}
]

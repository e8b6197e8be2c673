# Host with an IP-literal and a port (RFC 3986 3.2.2)
requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.1",
        "headers": [(b"Host", b"[2001:db8::1]:8080")],
        "body": b"",
        "environ": {"HTTP_HOST": "[2001:db8::1]:8080"},
    }
]

# field names are case-insensitive (RFC 9110 5.1)
strip_final_newline = True
requests = [
    {
        "method": "POST",
        "target": b"/n",
        "version": "1.1",
        "headers": [(b"hOST", b"example.com"), (b"content-length", b"2")],
        "body": b"ok",
        "content_length": 2,
        "environ": {"HTTP_HOST": "example.com", "CONTENT_LENGTH": "2"},
    }
]

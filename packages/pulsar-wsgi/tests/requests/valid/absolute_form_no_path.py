# absolute-form without a path: the path is '/'
requests = [
    {
        "method": "GET",
        "target": b"https://target.example",
        "version": "1.1",
        "headers": [(b"Host", b"target.example")],
        "body": b"",
        "path": "/",
        "query": "",
        "environ": {"HTTP_HOST": "target.example"},
    }
]

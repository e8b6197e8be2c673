# two Host lines (RFC 9112 3.2)
status = 400
reason = "Host"

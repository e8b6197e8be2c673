# a target longer than limit_request_line (default 8190): 414 (RFC 9112 3)
status = 414

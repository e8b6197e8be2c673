# a target longer than limit_request_line set to 64
settings = {"limit_request_line": 64}
status = 414

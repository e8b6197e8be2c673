status = 400  # NUL in the request target

status = 400  # invalid header value byte

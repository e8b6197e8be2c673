status = 400  # duplicate Content-Length

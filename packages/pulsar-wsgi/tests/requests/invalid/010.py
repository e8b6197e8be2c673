status = 400  # negative Content-Length

status = 400  # chunk size overflow

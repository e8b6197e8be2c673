status = 400  # chunk shorter than its size

status = 400  # bad chunk size

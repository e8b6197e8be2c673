status = 413  # declared body above max_body_size

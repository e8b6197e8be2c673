# a declared body above max_body_size
settings = {"max_body_size": 1024}
status = 413

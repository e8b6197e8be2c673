# a field larger than limit_request_field_size (default 8190): 431
status = 431

# a field larger than limit_request_field_size set to 20
settings = {"limit_request_field_size": 20}
status = 431

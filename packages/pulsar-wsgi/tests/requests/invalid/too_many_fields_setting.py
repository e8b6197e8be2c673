# more than limit_request_fields set to 3
settings = {"limit_request_fields": 3}
status = 431

# more than limit_request_fields (default 100) header fields: 431 (RFC 6585)
status = 431

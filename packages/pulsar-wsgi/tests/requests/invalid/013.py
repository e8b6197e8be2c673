status = 505  # HTTP version not supported

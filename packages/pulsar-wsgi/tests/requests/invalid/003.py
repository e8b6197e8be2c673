status = 400  # invalid byte (space) in a header name

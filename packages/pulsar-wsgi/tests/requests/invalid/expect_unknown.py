# an expectation we cannot meet (RFC 9110 10.1.1)
status = 417

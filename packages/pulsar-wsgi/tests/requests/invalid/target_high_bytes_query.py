# raw bytes >= 0x80 in the query
status = 400

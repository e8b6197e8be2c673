# a chunk size with whitespace in it
status = 400

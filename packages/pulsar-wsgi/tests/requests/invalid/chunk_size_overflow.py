# a chunk size beyond 64 bits
status = 400

# a negative chunk size
status = 400

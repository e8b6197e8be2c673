# the other order
status = 400

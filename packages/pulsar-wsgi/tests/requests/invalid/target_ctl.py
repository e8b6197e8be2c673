# a control byte in the target
status = 400

# a control byte in a field value
status = 400

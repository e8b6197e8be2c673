# a space inside a field name
status = 400

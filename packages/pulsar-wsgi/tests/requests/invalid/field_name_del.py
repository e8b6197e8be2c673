# DEL in a field name
status = 400

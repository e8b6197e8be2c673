# an empty field name
status = 400

# chunk data shorter than its size (the next line is read as data)
status = 400

# chunk data longer than its size
status = 400

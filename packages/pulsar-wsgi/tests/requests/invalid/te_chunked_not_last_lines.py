# ... also across two field lines
status = 400

# nothing after the HTTP version
status = 400

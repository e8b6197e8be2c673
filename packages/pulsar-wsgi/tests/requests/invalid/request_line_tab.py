# SP, not HTAB, separates the request line
status = 400

status = 400  # malformed request line (no space after the method)

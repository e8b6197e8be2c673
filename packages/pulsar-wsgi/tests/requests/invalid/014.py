status = 400  # obsolete line folding

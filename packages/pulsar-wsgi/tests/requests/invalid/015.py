status = 417  # an expectation we cannot meet

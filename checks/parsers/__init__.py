class ParseError(ValueError):
    """A command's output could not be understood."""

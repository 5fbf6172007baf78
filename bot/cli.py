"""`wscheck` command line (placeholder while the engine lands)."""


def main() -> int:
    return 0

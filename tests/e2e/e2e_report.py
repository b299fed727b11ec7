"""The end of every e2e check: each failure on its own line, then the verdict."""


def report(failures):
    """Prints `failures` and "ok" or their count; returns the exit status for sys.exit."""
    for failure in failures:
        print("FAIL", failure)
    print("ok" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0

#!/usr/bin/env python3
"""ctest's entry to the Python tests: pytest on the given files, or exit 77 (skipped) when the
test tools themselves are missing, which is not a failure of weightsync."""
import sys

try:
    import ml_dtypes  # noqa: F401
    import numpy  # noqa: F401
    import pytest
except ImportError as e:
    print(f"skipped: {e} (pip install -r requirements-dev.txt)")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))

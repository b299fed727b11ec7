#!/usr/bin/env python3
"""ctest's entry to the Python tests: pytest on the given files, or exit 77 (skipped) when the
test tools themselves are missing, which is not a failure of weightsync.
`--needs MODULE` (repeatable, before the files): also skip when MODULE does not import (torch,
transformers: large optional packages)."""
import importlib
import sys

args = sys.argv[1:]
needs = ["ml_dtypes", "numpy", "pytest"]
while len(args) >= 2 and args[0] == "--needs":
    needs.append(args[1])
    args = args[2:]
for module in needs:
    try:
        importlib.import_module(module)
    except ImportError as e:
        print(f"skipped: {e} (pip install -r requirements-dev.txt; torch by hand)")
        sys.exit(77)

import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *args]))

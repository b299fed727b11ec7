"""Makes the package (python/) and the numpy references (tests/e2e) importable, and finds
libweightsync.so: WEIGHTSYNC_LIBRARY (set by ctest) or the checkout's build/ tree."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

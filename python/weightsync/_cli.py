"""The `weightsync` command installed by pip: runs the C++ binary shipped inside the package."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    binary = Path(__file__).resolve().parent / "bin" / "weightsync"
    if not binary.is_file():
        sys.exit(f"weightsync: the command line binary is not installed at {binary} "
                 "(install the package with `pip install .`)")
    os.execv(str(binary), [str(binary), *sys.argv[1:]])


if __name__ == "__main__":
    main()

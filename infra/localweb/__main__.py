"""`python -m infra.localweb generate|serve ...`: the same commands as `clipforge web`, for a child process."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    main(["web", *sys.argv[1:]])

"""`python -m infra.locals3 serve ...`: the same commands as `clipforge s3`, for a child process or a script."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    main(["s3", *sys.argv[1:]])

#!/bin/sh
# Prints the interpreter for the project's virtual environment.
# The Lambda image runs Python 3.12 (lambda_src/images/inference/Dockerfile), so the handler is tested
# with 3.12 when this machine has it (on PATH or under pyenv). Without it, any Python
# 3.11+ is used and tests/test_image.py says that the minor version differs.
want=3.12
for candidate in "python$want" "$(pyenv root 2>/dev/null)/versions/$want"*/bin/python$want; do
  if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (3, 12))" 2>/dev/null; then
    command -v "$candidate" 2>/dev/null || echo "$candidate"; exit 0
  fi
done
for candidate in python3 python; do
  if "$candidate" -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>/dev/null; then
    echo "warning: Python $want not found; using $($candidate --version 2>&1)" >&2
    command -v "$candidate"; exit 0
  fi
done
echo "error: Python 3.11 or newer is needed (3.12 preferred: the Lambda image's version)" >&2
exit 1

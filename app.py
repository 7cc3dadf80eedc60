#!/usr/bin/env python3
"""The CDK app: read the configuration once, build the stacks, synthesize."""

from __future__ import annotations

import sys

from aws_cdk import App

from stacks.application import build_app
from stacks.config import load_config
from stacks.settings import ConfigError


def main() -> None:
    app = App()
    try:
        config = load_config(app.node.get_all_context())
    except ConfigError as error:
        # A traceback would bury the one line that says what to fix.
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    build_app(app, config)
    app.synth()


if __name__ == "__main__":
    main()

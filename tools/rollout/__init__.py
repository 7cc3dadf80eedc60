"""The rollout command: canary, ramp, promote and roll back as one command each.

``python -m tools.rollout <status|start|set-weight|promote|rollback|compare> --env <env>``

Every step edits the environment's ``rollout`` block in ``cdk.json`` (the committed state
of a release), checks the result with the app's own parser before replacing the file, and
prints the resulting routing and the ``cdk diff``/``cdk deploy`` commands that apply it.
``steps`` holds the transitions (pure), ``config_file`` reads and writes ``cdk.json``,
``plan`` describes a configuration in words, ``live`` reads AWS (only ``status``,
``compare`` and ``start`` without ``--stable`` need credentials).
"""

"""What CloudFormation does between two deploys of the app, derived offline.

``changes`` classifies each resource (created, updated, replaced, deleted) from
CloudFormation's resource provider schemas; ``world`` numbers Lambda versions in
publication order and resolves physical identities; ``checks`` names what would fail on
deploy; ``scenarios`` walks the rollout steps; ``python -m tools.transitions`` prints the
table in docs/rollout-transitions.md.
"""

"""The traffic gate: a custom resource and a CodeDeploy hook in one function (handler.py)."""

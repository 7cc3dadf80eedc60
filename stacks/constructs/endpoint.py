"""HTTPS endpoint on the alias."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.settings import EndpointAuth


class Endpoint(Construct):
    """A Function URL on the alias, so callers follow the canary routing.

    AWS_IAM by default: callers sign requests (SigV4) and need lambda:InvokeFunctionUrl.
    NONE makes the model callable by anyone who has the URL, at our cost; it exists for
    demos behind other controls and must be chosen explicitly in the configuration.
    """

    def __init__(
        self, scope: Construct, id_: str, *, alias: lambda_.Alias, auth: EndpointAuth
    ) -> None:
        super().__init__(scope, id_)
        self.url = alias.add_function_url(
            auth_type=(
                lambda_.FunctionUrlAuthType.AWS_IAM
                if auth is EndpointAuth.AWS_IAM
                else lambda_.FunctionUrlAuthType.NONE
            ),
            invoke_mode=lambda_.InvokeMode.BUFFERED,
        )

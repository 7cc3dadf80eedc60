"""The set-up every function of the project's own shares: log group, role, Python function.

The reconciler, the traffic gate and the monitors each run with a role of their own that
Lambda assumes and that writes to their own log group (kept a month, deleted with the
stack); the zip-packaged ones run lambda_src/<package> on Python 3.14 on arm64. Both
helpers add their resources to the caller's scope under the caller's construct IDs, so the
logical IDs are the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import function_code
from stacks.constructs.nag_ids import logical_id


def logs_and_role(
    scope: Construct, *, prefix: str = "", description: str
) -> tuple[logs.LogGroup, iam.Role]:
    """``<prefix>Logs`` and ``<prefix>Role``: the role may write to the log group."""
    log_group = logs.LogGroup(
        scope,
        f"{prefix}Logs",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
    )
    role = iam.Role(
        scope,
        f"{prefix}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
    )
    log_group.grant_write(role)
    return log_group, role


def python_function(
    scope: Construct,
    id_: str,
    *,
    package: str,
    timeout: Duration,
    memory_mb: int,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    description: str,
    environment: Mapping[str, str] | None = None,
) -> lambda_.Function:
    """lambda_src/``package`` (with the library modules it imports) as a zip function."""
    return lambda_.Function(
        scope,
        id_,
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        handler="index.handler",
        code=lambda_.Code.from_asset(str(function_code.stage(package))),
        timeout=timeout,
        memory_size=memory_mb,
        role=role,
        log_group=log_group,
        environment=None if environment is None else dict(environment),
        description=description,
    )


def grant_on_versions(
    role: iam.Role, function: lambda_.IFunction, actions: list[str], *, why: str
) -> None:
    """``actions`` on every version qualifier (``<arn>:*``) of ``function``, acknowledged:
    published version numbers are not known at synth; ``why`` says what the role does."""
    role.add_to_policy(
        iam.PolicyStatement(actions=actions, resources=[f"{function.function_arn}:*"])
    )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{logical_id(function)}.Arn>:*]",
            reason=f"{why}; the version numbers are not known at synth.",
        )
    )

"""The ``production`` alias: candidate version, optional stable version and weight."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.constructs.provisioned_concurrency import Allocation, ProvisionedConcurrency
from stacks.settings import AutoscalingSettings, ProvisionedConcurrencyShare


class ProductionAlias(Construct):
    """The ``production`` alias in every rollout state, and warm capacity for what it routes.

    The candidate is the version this deploy publishes (``function.current_version``);
    the stable version was published by an earlier deploy and is referenced by number.
    With a weight, the alias points at the stable version and sends ``canary_weight`` of
    invocations to the candidate; without a stable version everything goes to the
    candidate. Provisioned concurrency never sits on the alias (see ProvisionedConcurrency).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: lambda_.Function,
        alias_name: str,
        stable_lambda_version: int | None,
        canary_weight: float,
        provisioned_concurrency: ProvisionedConcurrencyShare,
        autoscaling: AutoscalingSettings | None,
    ) -> None:
        super().__init__(scope, id_)
        self.candidate: lambda_.IVersion = function.current_version
        self.stable: lambda_.IVersion | None = None
        if stable_lambda_version is not None:
            self.stable = lambda_.Version.from_version_attributes(
                self, "Stable", lambda_=function, version=str(stable_lambda_version)
            )
        pc = provisioned_concurrency
        # Each side's share of traffic after this deploy.
        candidate_weight = 1.0 if self.stable is None else canary_weight
        self.candidate_weight = candidate_weight
        allocations = [Allocation(self.candidate, pc.candidate, pc.candidate_max, candidate_weight)]
        if self.stable is not None:
            allocations.append(
                Allocation(self.stable, pc.stable, pc.stable_max, 1.0 - canary_weight)
            )
        self.provisioned_concurrency = ProvisionedConcurrency(
            self,
            "ProvisionedConcurrency",
            function=function,
            alias_name=alias_name,
            allocations=allocations,
            autoscaling_target_utilization=(
                autoscaling.target_utilization if autoscaling is not None else None
            ),
        )

        if self.stable is None:
            self.alias = lambda_.Alias(self, "Alias", alias_name=alias_name, version=self.candidate)
            self.serving: list[lambda_.IVersion] = [self.candidate]
        elif canary_weight == 0:
            # Stable only: the candidate is published (for a dark test or after a roll
            # back) but takes no traffic, and no routing configuration is needed.
            self.alias = lambda_.Alias(self, "Alias", alias_name=alias_name, version=self.stable)
            self.serving = [self.stable]
        else:
            self.alias = lambda_.Alias(
                self,
                "Alias",
                alias_name=alias_name,
                version=self.stable,
                additional_versions=[
                    lambda_.VersionWeight(version=self.candidate, weight=canary_weight)
                ],
            )
            self.serving = [self.stable, self.candidate]
        # Make before break: versions are warm before the alias moves traffic onto them,
        # and lose their allocation only after the alias has moved traffic away.
        self.alias.node.add_dependency(self.provisioned_concurrency.scale_up)
        self.provisioned_concurrency.settle.node.add_dependency(self.alias)

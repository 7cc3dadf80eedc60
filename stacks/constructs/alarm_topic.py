"""The SNS topic alarms notify, encrypted, TLS-only, and open to exactly these alarms."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Annotations, ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.settings import is_reserved_address

CLOUDWATCH = "cloudwatch.amazonaws.com"
PLACEHOLDER_WARNING = "sklearn-serving:alarm-email-placeholder"


class AlarmTopic(Construct):
    """Key, topic, topic policy and the optional e-mail subscription.

    A topic policy replaces SNS's default policy: ``enforce_ssl`` alone leaves only a Deny,
    and nothing would allow CloudWatch to publish. So the policy allows
    ``cloudwatch.amazonaws.com`` to publish for this account's named alarms only
    (``aws:SourceAccount``, ``aws:SourceArn``), and the key gives CloudWatch what it needs
    to encrypt the message under the same conditions. The alarms are named, not generated,
    so their ARNs are known here without a reference cycle (key -> alarm -> topic -> key).
    CloudWatch cannot publish to a topic under the AWS managed SNS key, hence the own key.

    An address on a reserved domain (example.org, .test, ...) is a placeholder: the
    subscription is made, but synth warns that the alarms reach no one.
    """

    def __init__(
        self, scope: Construct, id_: str, *, alarm_names: Sequence[str], email: str | None
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        alarm_arns = [
            stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for name in alarm_names
        ]
        conditions = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": alarm_arns},
        }
        self.key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
            description="Encrypts the inference alarm topic.",
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowTheAlarmsToEncryptNotifications",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=conditions,
            )
        )
        self.topic = sns.Topic(self, "AlarmTopic", master_key=self.key, enforce_ssl=True)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowTheAlarmsToPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=conditions,
            )
        )
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
            if is_reserved_address(email):
                Annotations.of(self).add_warning_v2(
                    PLACEHOLDER_WARNING,
                    f"alarms.email={email!r} is a placeholder on a reserved domain (RFC 2606): "
                    "the alarms reach no one until it is replaced. Set alarms.email of this "
                    "environment in cdk.json, or pass -c alarm_email=<on-call address>.",
                )

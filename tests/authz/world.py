"""A deployed stack as IAM sees it: physical names, ARNs and the policies that apply.

A synthesized template names resources by logical ID and builds ARNs with intrinsic
functions. Here each resource gets the physical name CloudFormation would give it in one
account and region (``sar.ACCOUNT``, ``sar.REGION``) and each intrinsic is evaluated, so
that an identity policy's ``Resource`` and a call's ARN are compared as IAM compares
them: as strings. Lambda version numbers come from the transition planner's state (the
numbers ``PublishVersion`` hands out, deploy after deploy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.authz.iam import Statement, statements
from tests.authz.sar import ACCOUNT, PARTITION, REGION

PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}


def _physical(stack: str, logical_id: str) -> str:
    # CloudFormation's generated names: stack name, logical ID, a random suffix.
    return f"{stack}-{logical_id[:24]}-SUFFIX"


@dataclass
class World:
    stack: str
    template: Mapping[str, Any]
    versions: Mapping[str, int]  # logical ID of an AWS::Lambda::Version -> its number

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        found: Mapping[str, Mapping[str, Any]] = self.template["Resources"]
        return found

    def of_type(self, type_: str) -> dict[str, Mapping[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}

    def props(self, logical_id: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = self.resources[logical_id].get("Properties", {})
        return found

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        where = f"{REGION}:{ACCOUNT}" if region else f":{ACCOUNT}"
        return f"arn:{PARTITION}:{service}:{where}:{resource}"

    # ------------------------------------------------------------------ intrinsics

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()  # fmt: skip
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = (
                    argument.split(".", 1) if isinstance(argument, str) else argument
                )
                return self.get_att(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = argument
                return separator.join(str(self.resolve(p)) for p in self.resolve(parts))
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Sub":
                return self._sub(argument)
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, argument: Any) -> str:
        text, names = (argument, {}) if isinstance(argument, str) else argument

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in names:
                return str(self.resolve(names[name]))
            if "." in name and name.split(".")[0] in self.resources:
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def ref(self, name: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::StackName":
            return self.stack
        resource = self.resources.get(name)
        if resource is None:
            return f"<parameter {name}>"
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::Lambda::Function":
            return self.function_name(name)
        if kind == "AWS::Lambda::Version":
            return self.get_att(name, "FunctionArn")
        if kind == "AWS::Lambda::Alias":
            return f"{self.get_att(props['FunctionName']['Ref'], 'Arn')}:{props['Name']}"
        if kind == "AWS::SNS::Topic":
            return self.arn("sns", self.name_of(name, "TopicName"))
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name_of(name, 'QueueName')}"
        if kind == "AWS::KMS::Key":
            return f"key-{name}"
        return self.name_of(name, _NAME_PROPERTY.get(kind, ""))

    def name_of(self, logical_id: str, prop: str) -> str:
        given = self.props(logical_id).get(prop) if prop else None
        return str(self.resolve(given)) if given else _physical(self.stack, logical_id)

    def function_name(self, logical_id: str) -> str:
        return self.name_of(logical_id, "FunctionName")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        kind = self.resources[logical_id]["Type"]
        props = self.props(logical_id)
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            return self.arn("lambda", f"function:{self.function_name(logical_id)}")
        if kind == "AWS::Lambda::Version":
            number = self.versions.get(logical_id, 0)
            if attribute == "Version":
                return str(number)
            function = self.resolve(props["FunctionName"])
            if not str(function).startswith("arn:"):
                function = self.arn("lambda", f"function:{function}")
            return f"{function}:{number}"
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return self.arn("iam", f"role/{self.ref(logical_id)}", region=False)
        if kind == "AWS::Logs::LogGroup" and attribute == "Arn":
            return self.arn("logs", f"log-group:{self.ref(logical_id)}:*")
        if kind == "AWS::Events::Rule" and attribute == "Arn":
            return self.arn("events", f"rule/{self.ref(logical_id)}")
        if kind == "AWS::KMS::Key" and attribute == "Arn":
            return self.arn("kms", f"key/{self.ref(logical_id)}")
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:{PARTITION}:s3:::{self.ref(logical_id)}"
        if kind == "AWS::KinesisFirehose::DeliveryStream" and attribute == "Arn":
            return self.arn("firehose", f"deliverystream/{self.ref(logical_id)}")
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return self.arn("sqs", self.name_of(logical_id, "QueueName"))
        if kind == "AWS::SNS::Topic" and attribute == "TopicName":
            return self.name_of(logical_id, "TopicName")
        if kind == "AWS::CloudWatch::Alarm" and attribute == "Arn":
            return self.arn("cloudwatch", f"alarm:{self.ref(logical_id)}")
        return f"{logical_id}.{attribute}"

    # ------------------------------------------------------------------ policies

    def role_of_function(self, function_id: str) -> str:
        role = self.props(function_id)["Role"]
        logical_id: str = role["Fn::GetAtt"][0]
        return logical_id

    def identity_policies(self, role_id: str) -> list[Statement]:
        """Every statement the role's inline, attached and known AWS managed policies hold.
        An AWS managed policy not in ``AWS_MANAGED`` grants nothing here: a call only it
        would allow counts as denied until its document is added."""
        found = []
        for arn in self.resolve(self.props(role_id).get("ManagedPolicyArns", [])):
            name = str(arn).rsplit("/", 1)[-1]
            if name in AWS_MANAGED:
                found += statements(f"{role_id} {name}", AWS_MANAGED[name])
        for index, policy in enumerate(self.props(role_id).get("Policies", [])):
            found += statements(f"{role_id} inline {index}", self.resolve(policy["PolicyDocument"]))
        for policy_id, resource in self.resources.items():
            if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            roles = resource["Properties"].get("Roles", [])
            if any(isinstance(r, dict) and r.get("Ref") == role_id for r in roles):
                document = self.resolve(resource["Properties"]["PolicyDocument"])
                found += statements(policy_id, document)
        return found

    def trust_policy(self, role_id: str) -> list[Statement]:
        return statements(
            f"{role_id} trust", self.resolve(self.props(role_id)["AssumeRolePolicyDocument"])
        )

    def lambda_permissions(self) -> list[tuple[str, Statement]]:
        """Each AWS::Lambda::Permission as the statement Lambda adds to the resource policy of
        the function, version or alias it names (AddPermission), keyed by that ARN."""
        found = []
        for logical_id, resource in self.of_type("AWS::Lambda::Permission").items():
            p = self.resolve(resource["Properties"])
            target = str(p["FunctionName"])
            if not target.startswith("arn:"):
                target = self.arn("lambda", f"function:{target}")
            condition: dict[str, dict[str, str]] = {}
            if "SourceArn" in p:
                condition["ArnLike"] = {"AWS:SourceArn": p["SourceArn"]}
            if "SourceAccount" in p:
                condition["StringEquals"] = {"AWS:SourceAccount": p["SourceAccount"]}
            principal = p["Principal"]
            body = {
                "Effect": "Allow",
                "Principal": {"Service": principal}
                if principal.endswith(".amazonaws.com")
                else {"AWS": principal},
                "Action": p["Action"],
                "Resource": target,
                **({"Condition": condition} if condition else {}),
            }
            found.append((target, Statement(logical_id, body)))
        return found


# AWS managed policies the stacks attach, as the AWS Managed Policy Reference prints them.
AWS_MANAGED: dict[str, dict[str, Any]] = {
    "AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
}

_NAME_PROPERTY = {
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Events::Rule": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::CodeDeploy::Application": "ApplicationName",
    "AWS::CodeDeploy::DeploymentGroup": "DeploymentGroupName",
}

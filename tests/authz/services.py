"""AWS services acting on the stacks' resources: resource policies and service roles.

* CloudWatch alarms publish to the alarm topic (``sns:Publish``) and encrypt with its
  key (``kms:GenerateDataKey*``, ``kms:Decrypt``), as ``cloudwatch.amazonaws.com`` with
  ``aws:SourceArn`` = the alarm and ``aws:SourceAccount`` (SNS Developer Guide, "Amazon
  SNS topic encryption with CloudWatch alarms");
* EventBridge invokes each rule target as ``events.amazonaws.com`` with ``aws:SourceArn``
  = the rule, against the function's (or version's) resource policy;
* CodeDeploy assumes the deployment group's role and invokes the BeforeAllowTraffic hook
  with it (the alias's update policy names the unqualified function);
* CloudWatch Logs assumes the subscription's role and calls ``firehose:PutRecord*``;
* CloudWatch Logs (``logs.<region>.amazonaws.com``) encrypts and decrypts a log group's
  events with the group's key, with ``kms:EncryptionContext:aws:logs:arn`` = the group
  (CloudWatch Logs user guide, "Encrypt log data in CloudWatch Logs using AWS KMS");
* Firehose assumes its destination role and writes the capture objects; to an SSE-KMS
  capture bucket S3 asks KMS for a data key (and decrypts it for multipart uploads) on the
  role's behalf, with ``kms:ViaService`` = S3 and the bucket's encryption context: the
  role's policy and the key policy (its account statement) must both allow it;
* Lambda assumes each execution role.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.authz.iam import Request, Statement, evaluate, statements
from tests.authz.proof import Case
from tests.authz.sar import ACCOUNT, REGION, Call, resource_arns
from tests.authz.world import World


def _case(
    world: World, principal: str, policies: list[Statement], label: str, action: str,
    resource: str, context: dict[str, str], why: str, *, service: bool,
) -> Case:  # fmt: skip
    caller = {"Service": principal} if service else None
    # AWS services call each other over TLS.
    context = {"aws:SecureTransport": "true", **context}
    decision = evaluate(policies, Request(action, resource, context, principal=caller))
    return Case(principal, label, action, resource, why, decision)


def _assume(world: World, role: str, service: str, why: str, context: dict[str, str]) -> Case:
    arn = str(world.get_att(role, "Arn"))
    return _case(world, service, world.trust_policy(role), f"{role} trust", "sts:AssumeRole",
                 arn, context, why, service=True)  # fmt: skip


def alarm_cases(world: World) -> list[Case]:
    cases = []
    topics = {str(world.ref(t)): t for t in world.of_type("AWS::SNS::Topic")}
    topic_policies = {}
    for policy in world.of_type("AWS::SNS::TopicPolicy").values():
        props = world.resolve(policy["Properties"])
        for topic in props["Topics"]:
            topic_policies[topic] = statements("topic policy", props["PolicyDocument"])
    for alarm_id, alarm in world.of_type("AWS::CloudWatch::Alarm").items():
        alarm_arn = str(world.get_att(alarm_id, "Arn"))
        context = {"aws:SourceArn": alarm_arn, "aws:SourceAccount": ACCOUNT}
        for action in world.resolve(alarm["Properties"].get("AlarmActions", [])):
            if action not in topics:
                continue  # CodeDeploy rollback is not an action; other ARNs are not ours
            cases.append(_case(world, "cloudwatch.amazonaws.com", topic_policies.get(action, []),
                               "alarm topic policy", "sns:Publish", action, context,
                               f"alarm {alarm_id}", service=True))  # fmt: skip
            key = world.props(topics[action]).get("KmsMasterKeyId")
            if key is None:
                continue
            key_id = key["Fn::GetAtt"][0]
            key_arn = str(world.get_att(key_id, "Arn"))
            key_policy = statements("key policy", world.resolve(world.props(key_id)["KeyPolicy"]))
            for kms_action in ("kms:GenerateDataKey", "kms:Decrypt"):
                cases.append(_case(world, "cloudwatch.amazonaws.com", key_policy,
                                   "alarm key policy", kms_action, key_arn, context,
                                   f"alarm {alarm_id}", service=True))  # fmt: skip
    return cases


def _queue_policies(world: World) -> dict[str, list[Statement]]:
    """Queue ARN -> its AWS::SQS::QueuePolicy statements."""
    found: dict[str, list[Statement]] = {}
    for policy in world.of_type("AWS::SQS::QueuePolicy").values():
        queues = policy["Properties"]["Queues"]
        document = world.resolve(policy["Properties"]["PolicyDocument"])
        for queue in queues:
            queue_id = queue["Ref"]
            arn = str(world.get_att(queue_id, "Arn"))
            found.setdefault(arn, []).extend(statements(f"{queue_id} policy", document))
    return found


def schedule_cases(world: World) -> list[Case]:
    permissions = world.lambda_permissions()
    queues = _queue_policies(world)
    cases = []
    for rule_id, rule in world.of_type("AWS::Events::Rule").items():
        rule_arn = str(world.get_att(rule_id, "Arn"))
        for target in world.resolve(rule["Properties"].get("Targets", [])):
            dead_letter = target.get("DeadLetterConfig", {}).get("Arn")
            if dead_letter is not None:
                # EventBridge sends an event it could not deliver to the target's DLQ.
                context = {"aws:SourceArn": rule_arn, "aws:SourceAccount": ACCOUNT}
                cases.append(_case(world, "events.amazonaws.com", queues.get(str(dead_letter), []),
                                   "queue policy", "sqs:SendMessage", str(dead_letter), context,
                                   f"rule {rule_id} dead-letter queue", service=True))  # fmt: skip
            arn = str(target["Arn"])
            if ":lambda:" not in arn:
                continue
            policy = [s for target_arn, s in permissions if target_arn == arn]
            context = {"aws:SourceArn": rule_arn, "aws:SourceAccount": ACCOUNT}
            (resource,) = resource_arns(Call("lambda", "Invoke", {"FunctionName": arn}))
            cases.append(_case(world, "events.amazonaws.com", policy, "function resource policy",
                               "lambda:InvokeFunction", resource, context, f"rule {rule_id}",
                               service=True))  # fmt: skip
    return cases


def codedeploy_cases(world: World) -> list[Case]:
    cases = []
    for alias in world.of_type("AWS::Lambda::Alias").values():
        update = alias.get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate")
        if update is None:
            continue
        (group_id,) = world.of_type("AWS::CodeDeploy::DeploymentGroup")
        role = world.props(group_id)["ServiceRoleArn"]["Fn::GetAtt"][0]
        cases.append(_assume(world, role, "codedeploy.amazonaws.com", "deployment group", {}))
        hook = update.get("BeforeAllowTrafficHook")
        if hook is not None:
            (arn,) = resource_arns(Call("lambda", "Invoke", {"FunctionName": world.resolve(hook)}))
            cases.append(_case(world, role, world.identity_policies(role), role,
                               "lambda:InvokeFunction", arn, {}, "BeforeAllowTraffic hook",
                               service=False))  # fmt: skip
    return cases


@dataclass(frozen=True)
class BucketKey:
    """The capture bucket's default KMS key, from the model-store stack's world."""

    arn: str
    policy: list[Statement]


def capture_bucket_key(world: World) -> BucketKey | None:
    for bucket_id in world.of_type("AWS::S3::Bucket"):
        props = world.props(bucket_id)
        if "-captures-" not in str(world.resolve(props.get("BucketName", ""))):
            continue
        for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
            default = rule.get("ServerSideEncryptionByDefault", {})
            if default.get("SSEAlgorithm") == "aws:kms":
                key_id = default["KMSMasterKeyID"]["Fn::GetAtt"][0]
                policy = world.resolve(world.props(key_id)["KeyPolicy"])
                return BucketKey(str(world.get_att(key_id, "Arn")),
                                 statements("capture key policy", policy))  # fmt: skip
    return None


def log_group_key_cases(world: World) -> list[Case]:
    cases = []
    for group_id in world.of_type("AWS::Logs::LogGroup"):
        key = world.props(group_id).get("KmsKeyId")
        if key is None:
            continue
        key_id = key["Fn::GetAtt"][0]
        key_arn = str(world.get_att(key_id, "Arn"))
        key_policy = statements("key policy", world.resolve(world.props(key_id)["KeyPolicy"]))
        # The context is the log group's ARN without the ':*' of its GetAtt.
        group_arn = world.arn("logs", f"log-group:{world.ref(group_id)}")
        context = {"kms:EncryptionContext:aws:logs:arn": group_arn}
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            cases.append(_case(world, f"logs.{REGION}.amazonaws.com", key_policy,
                               "log group key policy", action, key_arn, context,
                               f"log group {group_id}", service=True))  # fmt: skip
    return cases


def capture_cases(world: World, bucket_key: BucketKey | None = None) -> list[Case]:
    cases = []
    for subscription in world.of_type("AWS::Logs::SubscriptionFilter").values():
        props = subscription["Properties"]
        role = props["RoleArn"]["Fn::GetAtt"][0]
        log_group = world.resolve(props["LogGroupName"])
        source = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{log_group}:*"
        cases.append(_assume(world, role, "logs.amazonaws.com", "subscription filter",
                             {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT}))  # fmt: skip
        stream = str(world.resolve(props["DestinationArn"]))
        for action in ("firehose:PutRecord", "firehose:PutRecordBatch"):
            cases.append(_case(world, role, world.identity_policies(role), role, action, stream,
                               {}, "subscription filter delivery", service=False))  # fmt: skip
    for stream_id in world.of_type("AWS::KinesisFirehose::DeliveryStream"):
        destination = world.props(stream_id).get("ExtendedS3DestinationConfiguration")
        if destination is None:
            continue
        role = destination["RoleARN"]["Fn::GetAtt"][0]
        stream_arn = str(world.get_att(stream_id, "Arn"))
        context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": stream_arn}
        cases.append(_assume(world, role, "firehose.amazonaws.com", "delivery stream", context))
        bucket = str(world.resolve(destination["BucketARN"])).split(":::")[1]
        key = f"{world.resolve(destination.get('Prefix', ''))}part-0.gz".replace("!{", "{")
        for call in (
            Call("s3", "PutObject", {"Bucket": bucket, "Key": key}),
            Call("s3", "AbortMultipartUpload", {"Bucket": bucket, "Key": key, "UploadId": "u"}),
            Call("s3", "GetBucketLocation", {"Bucket": bucket}),
            Call("s3", "ListBucket", {"Bucket": bucket}),
        ):
            for arn in resource_arns(call):
                cases.append(_case(world, role, world.identity_policies(role), role, call.action,
                                   arn, {}, "capture delivery", service=False))  # fmt: skip
        if bucket_key is None:
            continue
        context = {"kms:ViaService": f"s3.{REGION}.amazonaws.com",
                   "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}"}  # fmt: skip
        account = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}  # the key policy's delegation
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            cases.append(_case(world, role, world.identity_policies(role), role, action,
                               bucket_key.arn, context, "capture delivery (SSE-KMS)",
                               service=False))  # fmt: skip
            request = Request(action, bucket_key.arn, {"aws:SecureTransport": "true", **context},
                              principal=account)  # fmt: skip
            decision = evaluate(bucket_key.policy, request)
            cases.append(Case(role, "capture key policy (account)", action, bucket_key.arn,
                              "capture delivery (SSE-KMS)", decision))  # fmt: skip
    return cases


def execution_role_cases(world: World) -> list[Case]:
    return [
        _assume(world, world.role_of_function(f), "lambda.amazonaws.com", f"runs {f}", {})
        for f in world.of_type("AWS::Lambda::Function")
    ]


def service_cases(world: World, bucket_key: BucketKey | None = None) -> list[Case]:
    return [
        *alarm_cases(world),
        *schedule_cases(world),
        *codedeploy_cases(world),
        *capture_cases(world, bucket_key),
        *log_group_key_cases(world),
        *execution_role_cases(world),
    ]

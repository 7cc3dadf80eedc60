"""``python -m tools.outcomes --env E``: the capture bucket's objects of the last days, read
under botocore's Stubber (CloudFormation and S3 models), give the same report as the export."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.analysis import synthetic
from tools.outcomes.__main__ import EXIT_BAD_INPUT, main

STACK = "sklearn-serving-prod-model-store"
BUCKET = "sklearn-serving-prod-captures-123456789012-eu-west-1"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return synthetic.write_outcomes_example(tmp_path_factory.mktemp("live"), rows=1200)


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any, Stubber, Stubber]]:
    session = boto3.Session(aws_access_key_id="t", aws_secret_access_key="t",
                            region_name="eu-west-1")  # fmt: skip
    cloudformation, s3 = session.client("cloudformation"), session.client("s3")
    with Stubber(cloudformation) as cfn, Stubber(s3) as s3_stub:
        yield cloudformation, s3, cfn, s3_stub
        cfn.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()


def outputs(cfn: Stubber, present: bool = True) -> None:
    items = [{"OutputKey": "CaptureBucketName", "OutputValue": BUCKET}] if present else []
    cfn.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": STACK, "CreationTime": "2026-11-25T00:00:00Z",
                     "StackStatus": "UPDATE_COMPLETE", "Outputs": items}]},
        {"StackName": STACK},
    )  # fmt: skip


def test_the_bucket_gives_the_same_report_as_the_export(
    example: dict[str, Path], clients: Any
) -> None:
    cloudformation, s3, cfn, s3_stub = clients
    outputs(cfn)
    lines = example["capture"].read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    today = dt.date.today()
    old = today - dt.timedelta(days=40)
    keys = [f"captures/model=churn/version=v1/date={today}/a.gz",
            f"captures/model=churn/version=v2/date={today}/b.gz",
            f"captures/model=churn/version=v2/date={old}/old.gz"]  # fmt: skip
    s3_stub.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": k} for k in keys], "IsTruncated": False},
        {"Bucket": BUCKET, "Prefix": "captures/model=churn/"},
    )
    for key, part in ((keys[0], lines[:half]), (keys[1], lines[half:])):
        body = gzip.compress(b"".join(part))
        s3_stub.add_response(
            "get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))},
            {"Bucket": BUCKET, "Key": key},
        )  # fmt: skip
    live, exported = io.StringIO(), io.StringIO()
    assert main(["--env", "prod", "--labels", str(example["labels"]), "--json"], live,
                lambda region: (cloudformation, s3)) == 0  # fmt: skip
    assert main(["--capture", str(example["capture"]), "--labels", str(example["labels"]),
                 "--json"], exported) == 0  # fmt: skip
    assert json.loads(live.getvalue()) == json.loads(exported.getvalue())


def test_a_stack_without_the_output_is_named(example: dict[str, Path], clients: Any,
                                              capsys: Any) -> None:  # fmt: skip
    cloudformation, s3, cfn, _ = clients
    outputs(cfn, present=False)
    code = main(["--env", "prod", "--labels", str(example["labels"])], io.StringIO(),
                lambda region: (cloudformation, s3))  # fmt: skip
    assert code == EXIT_BAD_INPUT
    assert "has no CaptureBucketName output" in capsys.readouterr().err

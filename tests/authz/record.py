"""Real boto3 clients whose answers come from an account's state, checked by botocore.

Each client records every call it is asked to make (service, operation, parameters),
then botocore validates the parameters against the service model, and the answer is
queued just in time through a ``Stubber``, which validates it against the output shape
(or, for an error, gives it the service's error form). The answers are this suite's
model of the account (which versions hold provisioned concurrency, where the alias
points); the calls are the code's own.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.authz.sar import REGION, Call


@dataclass(frozen=True)
class Failure:
    """An error answer: ``code`` as the service names it."""

    code: str
    status: int = 400
    message: str = "refused by the test's account"


# The real factory, kept before any test patches ``boto3.client``.
_CLIENT = boto3.client

Answer = Callable[[Call], "dict[str, Any] | Failure"]


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


class Recorder:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[Call] = []

    def client(self, service: str, *args: Any, **kwargs: Any) -> Any:
        del args, kwargs  # region and credentials are the test account's
        client = _CLIENT(
            service,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        stubber = Stubber(client)
        method_of = {api: method for method, api in client.meta.method_to_api_mapping.items()}

        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            call = Call(service, model.name, copy.deepcopy(params))
            self.calls.append(call)
            outcome = self.answer(call)
            if isinstance(outcome, Failure):
                stubber.add_client_error(
                    method_of[model.name],
                    service_error_code=outcome.code,
                    service_message=outcome.message,
                    http_status_code=outcome.status,
                )
            else:
                stubber.add_response(method_of[model.name], outcome)

        # Before the Stubber's own check, which needs the answer queued.
        client.meta.events.register_first("before-parameter-build.*.*", before)
        stubber.activate()
        return client


@contextmanager
def recording(monkeypatch: pytest.MonkeyPatch, answer: Answer) -> Iterator[Recorder]:
    """``boto3.client`` returns recording clients while the block runs."""
    recorder = Recorder(answer)
    with monkeypatch.context() as patch:
        patch.setattr(boto3, "client", recorder.client)
        yield recorder

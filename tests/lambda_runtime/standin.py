"""A loopback stand-in for the Lambda API calls moto does not implement, and for
CloudFormation's pre-signed response URL.

Lambda's REST API (paths and fields from botocore's service model, which the function's
boto3 uses to build and parse each call): GetAlias, Invoke, and the provisioned
concurrency calls (List/Get/Put/Delete), which moto 5 does not serve. An allocation is
READY as soon as it is put. ``invoke`` is a hook: the tests route it to a running
execution environment. ``PUT /cfn/<name>`` records a custom resource's response body,
as CloudFormation's S3 URL receives it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tests.lambda_runtime.loopback import JsonAnswers, LoopbackServer
from tests.lambda_runtime.sandbox import ACCOUNT, REGION

_ALIAS = re.compile(r"^/2015-03-31/functions/([^/]+)/aliases/([^/]+)$")
_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_PC = re.compile(r"^/2019-09-30/functions/([^/]+)/provisioned-concurrency$")


def function_name(raw: str) -> str:
    name = unquote(raw)
    return name.split(":")[6] if name.startswith("arn:") else name.split(":")[0]


class StandIn(LoopbackServer):
    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], dict[str, Any]] = {}
        self.allocations: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[str, str]] = []
        self.responses: dict[str, dict[str, Any]] = {}
        self.invoke: Callable[[str, bytes], tuple[bytes, str | None]] | None = None
        super().__init__(self._handler_class())

    @property
    def endpoint(self) -> str:
        return f"http://{self.host_port}"

    def _config(self, name: str, qualifier: str) -> dict[str, Any]:
        executions = self.allocations[(name, qualifier)]
        return {
            "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:{qualifier}",
            "RequestedProvisionedConcurrentExecutions": executions,
            "AvailableProvisionedConcurrentExecutions": executions,
            "AllocatedProvisionedConcurrentExecutions": executions,
            "Status": "READY",
            "LastModified": "2026-01-01T00:00:00.000+0000",
        }

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Any:
        """(status, JSON body or bytes, headers) of one call."""
        self.calls.append((method, path))
        if method == "PUT" and path.startswith("/cfn/"):
            self.responses[path[len("/cfn/") :]] = json.loads(body)
            return 200, b"", {}
        if (match := _ALIAS.match(path)) and method == "GET":
            key = (function_name(match[1]), unquote(match[2]))
            if key not in self.aliases:
                error = {"Type": "User", "Message": f"Alias not found: {key[1]}"}
                return 404, error, {"x-amzn-ErrorType": "ResourceNotFoundException"}
            return 200, self.aliases[key], {}
        if (match := _INVOKE.match(path)) and method == "POST":
            assert self.invoke is not None, "no invoke hook set"
            payload, error_type = self.invoke(unquote(match[1]), body)
            headers = {"X-Amz-Executed-Version": "8"}
            if error_type:
                headers["X-Amz-Function-Error"] = error_type
            return 200, payload, headers
        if match := _PC.match(path):
            name, qualifier = function_name(match[1]), query.get("Qualifier", "")
            if method == "GET" and "List" in query:
                configs = [self._config(n, q) for n, q in self.allocations if n == name]
                return 200, {"ProvisionedConcurrencyConfigs": configs}, {}
            if method == "PUT":
                executions = int(json.loads(body)["ProvisionedConcurrentExecutions"])
                self.allocations[(name, qualifier)] = executions
                return 202, self._config(name, qualifier), {}
            if (name, qualifier) not in self.allocations:
                error = {"Type": "User", "Message": "No Provisioned Concurrency Config found"}
                code = "ProvisionedConcurrencyConfigNotFoundException"
                return 404, error, {"x-amzn-ErrorType": code}
            if method == "GET":
                return 200, self._config(name, qualifier), {}
            if method == "DELETE":
                del self.allocations[(name, qualifier)]
                return 204, b"", {}
        return 404, {"Message": f"{method} {path} is not served"}, {"x-amzn-ErrorType": "NotFound"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(JsonAnswers, BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer, headers = standin._route(self.command, url.path, query, body)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_json(status, data, headers)

            def do_GET(self) -> None:
                self._serve()

            def do_PUT(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

        return Handler

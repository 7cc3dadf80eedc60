"""Bugs the property tests found, each pinned by the smallest input that showed it."""

from __future__ import annotations

from typing import Any

from tests.handler.conftest import valid_record
from tests.reliability.conftest import Served


def test_a_value_nested_near_the_parsers_limit_is_a_400_not_a_500(served: Served) -> None:
    # 1479 levels: still within what json.loads accepts at the top of the stack (so a
    # direct invocation delivers it), beyond what json.dumps manages from inside the
    # validator, whose error message used to show the value and raised RecursionError.
    nested: Any = []
    for _ in range(1479):
        nested = [nested]
    response, _ = served.invoke({**valid_record(), "tenure_months": nested})
    assert response["statusCode"] == 400, response
    assert response["error"]["message"] == (
        "tenure_months: must be a number, got array nested too deeply to show"
    )

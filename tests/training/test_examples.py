"""The example customers the demo, the soak and the cost model share are valid requests."""

from __future__ import annotations

from inference.validation import schema_from_artifact, validate_record
from training.schema import EXAMPLE_RECORDS, FEATURE_NAMES, FEATURES


def test_examples_name_every_feature_in_schema_order_and_pass_the_handlers_validation() -> None:
    schema = schema_from_artifact([f.to_json() for f in FEATURES])
    for record in EXAMPLE_RECORDS:
        assert tuple(record) == FEATURE_NAMES
        values, problems = validate_record(record, schema, row=None)
        assert problems == []
        assert values == [record[name] for name in FEATURE_NAMES]

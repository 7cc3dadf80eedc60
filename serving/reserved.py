"""Names the handler reads in a request, so no feature may carry them.

One list for the handler (which refuses an artifact whose schema uses one) and for
training and packaging (which refuse such a schema before a model is trained): a feature
called ``instances`` would turn every single-record request into a batch, one called
``_warmup`` would make a record a warm-up ping or refuse it, one called ``_gate`` would
hide the request from every metric and analysis.

``GATE_KEY`` marks the traffic gate's own requests (its golden rows, sent to a version
before the alias routes to it): ``{"instances": [...], "_gate": true}`` is validated and
answered as any request, but writes no prediction log line, no prediction or latency
metric and no capture record, so golden rows reach no dashboard, alarm, comparison,
evaluator or drift monitor.
Only a direct invocation (Lambda ``Invoke``, which needs IAM) may carry it: a Function URL
or API Gateway caller that sends it is refused, so no caller can keep its traffic out of
the numbers. The warmer's ``{"_warmup": true}`` predicts nothing and is kept out likewise.

``EXPLAIN_KEY`` asks for explanations with the predictions: ``{..features.., "explain": true}``
or ``{"instances": [...], "explain": true}`` (docs/calling.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

BATCH_KEY = "instances"
WARMUP_KEY = "_warmup"
GATE_KEY = "_gate"
EXPLAIN_KEY = "explain"

# name -> what a request means by it (the refusals say why the name is taken).
RESERVED_FEATURE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        BATCH_KEY: 'the batch body {"instances": [records]}',
        WARMUP_KEY: 'the warm-up ping {"_warmup": true}',
        GATE_KEY: 'the traffic gate\'s mark {"_gate": true}, kept out of metrics, logs and capture',
        EXPLAIN_KEY: 'the request for explanations {"explain": true}',
    }
)

"""Names the handler reads in a request, so no feature may carry them.

One list for the handler (which refuses an artifact whose schema uses one) and for
training and packaging (which refuse such a schema before a model is trained): a feature
called ``instances`` would turn every single-record request into a batch, one called
``_warmup`` would make a record a warm-up ping or refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

BATCH_KEY = "instances"
WARMUP_KEY = "_warmup"

# name -> what a request means by it (the refusals say why the name is taken).
RESERVED_FEATURE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        BATCH_KEY: 'the batch body {"instances": [records]}',
        WARMUP_KEY: 'the warm-up ping {"_warmup": true}',
    }
)

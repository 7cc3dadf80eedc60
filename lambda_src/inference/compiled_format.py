"""The compiled runtime's archive formats: names and the arrays each archive holds.

One list for the loader (``compiled_model``, imported on every cold start) and the second
format's evaluator (``compiled_pipeline``, imported only when such an archive is loaded).
"""

FORMAT_V1 = "gbm-trees-npz/1"
V1_ARRAYS = ("mean", "scale", "init_raw", "roots", "feature", "threshold", "left", "right", "value")
FORMAT_V2 = "sklearn-compiled-npz/2"
PRE_ARRAYS = ("pre_input", "pre_kind", "pre_a", "pre_b", "pre_low", "pre_high")
TREE_ARRAYS = ("roots", "feature", "threshold", "left", "right", "value", "init")
LINEAR_ARRAYS = ("coef", "intercept")
# The second format's arrays beyond the preprocessing, by its meta's "estimator".
ESTIMATOR_ARRAYS = {"trees": TREE_ARRAYS, "linear": LINEAR_ARRAYS}
# Optional tree arrays, read when present: ``cover`` (float64 per node, the training weight
# that reached it) is what explanations need; an archive without it serves predictions
# as before and answers explanations with ``explain.ExplanationsUnavailableError``.
OPTIONAL_TREE_ARRAYS = ("cover",)

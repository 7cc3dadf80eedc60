"""The compiled runtime's archive formats: names and the arrays each archive holds.

One list for the loader (``compiled_model``, imported on every cold start) and the second
format's evaluator (``compiled_pipeline``, imported only when such an archive is loaded).
"""

FORMAT_V1 = "gbm-trees-npz/1"
V1_ARRAYS = ("mean", "scale", "init_raw", "roots", "feature", "threshold", "left", "right", "value")
FORMAT_V2 = "sklearn-compiled-npz/2"
FORMAT_V3 = "sklearn-compiled-npz/3"
PRE_ARRAYS = ("pre_input", "pre_kind", "pre_a", "pre_b", "pre_low", "pre_high")
TREE_ARRAYS = ("roots", "feature", "threshold", "left", "right", "value", "init")
# Optional (a v2 archive lacks them: no NaN reached its trees, no categorical splits).
TREE_OPTIONAL_ARRAYS = ("missing_left", "cat_split", "cat_left", "cat_values", "cat_offsets")
LINEAR_ARRAYS = ("coef", "intercept")
# The second format's arrays beyond the preprocessing, by its meta's "estimator".
ESTIMATOR_ARRAYS = {"trees": TREE_ARRAYS, "linear": LINEAR_ARRAYS}
ESTIMATOR_OPTIONAL_ARRAYS = {"trees": TREE_OPTIONAL_ARRAYS, "linear": ()}

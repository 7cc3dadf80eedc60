"""The compiled runtime's archive formats: names and the arrays each archive holds.

One list for the loader (``compiled_model``, imported on every cold start) and the later
formats' evaluator (``compiled_pipeline``, imported only when such an archive is loaded).
"""

FORMAT_V1 = "gbm-trees-npz/1"
V1_ARRAYS = ("mean", "scale", "init_raw", "roots", "feature", "threshold", "left", "right", "value")
FORMAT_V2 = "sklearn-compiled-npz/2"
# The third format: the second's arrays, plus what DataFrame pipelines need (fills for
# missing values, lookup tables for categorical features; the trees' missing-value routing
# and categorical splits: see compiled_pipeline's docstring).
FORMAT_V3 = "sklearn-compiled-npz/3"
PRE_ARRAYS = ("pre_input", "pre_kind", "pre_a", "pre_b", "pre_low", "pre_high")
# Format 3's preprocessing arrays beyond PRE_ARRAYS; absent in a format 2 archive (no fill,
# no tables).
PRE_V3_ARRAYS = ("pre_fill", "pre_table")
TREE_ARRAYS = ("roots", "feature", "threshold", "left", "right", "value", "init")
# Optional (a v2 archive lacks them: no NaN reached its trees, no categorical splits).
# ``cover`` (float64 per node, the training weight that reached it) is what explanations
# need; an archive without it serves predictions as before and answers explanations with
# ``explain.ExplanationsUnavailableError``.
TREE_OPTIONAL_ARRAYS = (
    "missing_left",
    "cat_split",
    "cat_left",
    "cat_values",
    "cat_offsets",
    "cover",
)
LINEAR_ARRAYS = ("coef", "intercept")
# The later formats' arrays beyond the preprocessing, by their meta's "estimator".
ESTIMATOR_ARRAYS = {"trees": TREE_ARRAYS, "linear": LINEAR_ARRAYS}
ESTIMATOR_OPTIONAL_ARRAYS = {"trees": TREE_OPTIONAL_ARRAYS, "linear": ()}

"""JSON texts written by hand, so that objects can repeat keys (a dict cannot)."""

from __future__ import annotations

from hypothesis import strategies as st

Texts = st.SearchStrategy[str]


def documents(keys: Texts, scalars: Texts) -> Texts:
    """JSON texts of ``scalars`` nested in objects (keys drawn from ``keys``, maybe twice)
    and arrays."""

    def containers(children: Texts) -> Texts:
        pairs = st.lists(st.tuples(keys, children), max_size=4)
        return st.one_of(
            pairs.map(lambda ps: "{" + ", ".join(f'"{k}": {v}' for k, v in ps) + "}"),
            st.lists(children, max_size=4).map(lambda vs: "[" + ", ".join(vs) + "]"),
        )

    return st.recursive(scalars, containers, max_leaves=20)

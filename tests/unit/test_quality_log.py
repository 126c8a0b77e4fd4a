"""QualityLog: findings added one by one and in bulk become one table, in the contract's order."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reconcile.contracts import DQ_COLUMNS
from reconcile.quality import QualityLog


def test_bulk_and_single_findings_in_one_sorted_table():
    q = QualityLog()
    q.add("warning", "b_code", source="s.csv", row=3, column="c", message_id="m9", detail="one")
    q.add_many("error", "a_code", source=np.array(["f.csv", None, "f.csv"], dtype=object),
               row=pd.array([2, None, 1], dtype="Int64"), column="waba_id",
               message_id=np.array(["m2", np.nan, "m1"], dtype=object), detail="excluded")
    q.add_many("error", "a_code", source="g.csv", row=np.array([7, 5]), message_id=["m7", "m5"],
               detail=np.array(["x", "y"]))
    q.add_many("warning", "c_code", source=None, row=None, n=2, detail=np.array([1.5, None], dtype=object))
    q.add_many("error", "a_code", row=np.zeros(0, np.int64))                   # nothing added
    assert len(q) == 8 and q.has("c_code") and not q.has("d_code")
    f = q.frame()
    assert list(f.columns) == DQ_COLUMNS and str(f["row"].dtype) == "Int64"
    assert all(f[c].dtype == "str" for c in DQ_COLUMNS if c != "row")
    assert f.astype(object).where(f.notna(), None).values.tolist() == [
        ["error", "a_code", "", None, "waba_id", "", "excluded"],
        ["error", "a_code", "f.csv", 1, "waba_id", "m1", "excluded"],
        ["error", "a_code", "f.csv", 2, "waba_id", "m2", "excluded"],
        ["error", "a_code", "g.csv", 5, "", "m5", "y"],
        ["error", "a_code", "g.csv", 7, "", "m7", "x"],
        ["warning", "b_code", "s.csv", 3, "c", "m9", "one"],
        ["warning", "c_code", "", None, "", "", ""],
        ["warning", "c_code", "", None, "", "", "1.5"],
    ]
    assert q.counts() == {"error:a_code": 5, "warning:b_code": 1, "warning:c_code": 2}
    other = QualityLog()
    other.add_many("warning", "b_code", source="a.csv", row=[1])
    q.merge(other)
    assert len(q.frame()) == 9 and q.frame()["source"].tolist()[5] == "a.csv"


def test_empty_log_has_the_contract_columns():
    f = QualityLog().frame()
    assert list(f.columns) == DQ_COLUMNS and len(f) == 0 and str(f["row"].dtype) == "Int64"

"""Window units with the user numbers resolved through market classes (many distinct numbers) equal those
resolved number by number (rule book section 0, "Market")."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
from builders import accounts_frame, inbound, market_map_frame, messages_frame, msg  # noqa: E402

import reconcile.rules.markets as markets  # noqa: E402
from reconcile.engine import dedupe_messages, window_units  # noqa: E402
from reconcile.quality import QualityLog  # noqa: E402


def _log(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    base = pd.Timestamp("2025-06-29T18:00:00Z")
    users = ["5511999990001", "919876543210", "12025550123", "447700900123", "79161234567", "999123", "12ab"]
    rows = []
    for i in range(n):
        at = base + pd.Timedelta(minutes=int(rng.integers(0, 4 * 24 * 60)))
        user, phone = str(rng.choice(users)), str(rng.choice(["P1", "P2"]))
        if rng.random() < 0.3:
            rows.append(inbound(f"m{i:04d}", at, user=user, phone=phone))
        else:
            rows.append(msg(f"m{i:04d}", at, kind=str(rng.choice(["template", "free_form"])),
                            category=str(rng.choice(["marketing", "utility", "authentication", ""])),
                            status=str(rng.choice(["delivered", "read", "sent"])), user=user, phone=phone))
    return messages_frame(rows)


def _run(frame):
    quality = QualityLog()
    deduped, _ = dedupe_messages(frame, QualityLog())
    raw, coverage, counts = window_units(deduped, accounts_frame(("W1", "America/Sao_Paulo")), market_map_frame(),
                                         quality)
    return raw, coverage, counts, quality.frame()


def test_market_classes_give_the_same_units(monkeypatch):
    frame = _log()
    monkeypatch.setattr(markets, "_REDUCE_MIN", 10**9)
    each = _run(frame)
    monkeypatch.setattr(markets, "_REDUCE_MIN", 0)
    classes = _run(frame)
    for a, b in zip(each[:2], classes[:2]):
        pd.testing.assert_frame_equal(b, a, check_exact=True)
        assert len(a) > 0
    assert each[2] == classes[2]
    pd.testing.assert_frame_equal(classes[3], each[3], check_exact=True)
    assert {"unparseable_number", "unknown_calling_code"} <= set(each[3]["code"])

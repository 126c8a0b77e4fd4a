"""Synthetic canonical inputs for benchmarks and property tests (vectorised with numpy / pyarrow).

``generate_messages(n, seed, start, days, accounts)`` builds about ``n`` message rows (the contract's
``messages`` shape) with a realistic mix:

* users: about one in ten active per day; each active user-day is a *session* of a few messages;
* sessions started by the user (inbound bursts of 1-3 messages, ~6% from a Click-to-WhatsApp ad or a
  Page call-to-action, answered by free-form replies and sometimes a utility/authentication template)
  or by the business (a marketing / utility / authentication template, sometimes answered, then
  free-form); ~5% of gaps inside a session are long (hours to a day) so windows expire and re-open;
* outbound statuses: ~2% failed, the rest delivered or read (a few read without delivered_at),
  ~1% of templates without a category, ~0.2% unknown calling codes, timestamps in whole seconds
  (ties happen, as in Meta's webhooks), ~1% duplicate rows (earlier ``sent`` webhooks of a message).

``make_accounts``, ``make_rate_card`` (long format, tiers for utility/authentication in PMP and for
NBP notifications, authentication-international for India and Indonesia) and ``write_dataset``
(Parquet messages + CSV accounts / rate card / invoice) complete an input set.

CLI: ``python benchmarks/generate.py --messages 1000000 --out benchmarks/_data/m1e6``.
"""
from __future__ import annotations

import argparse
import os
import time
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SECOND_NS = 1_000_000_000
DAY_S = 86_400

#: (country, calling-code prefix of the user number, random digits after it, weight)
COUNTRIES = [
    ("BR", "55119", 8, 0.26), ("IN", "919", 9, 0.22), ("ID", "62812", 8, 0.10), ("MX", "5255", 8, 0.08),
    ("US", "1212", 7, 0.06), ("CA", "1416", 7, 0.02), ("CO", "57300", 7, 0.05), ("DE", "49151", 8, 0.05),
    ("GB", "447700", 6, 0.05), ("NG", "234803", 7, 0.04), ("EG", "20100", 7, 0.03), ("AR", "54911", 8, 0.02),
    ("JM", "1876", 7, 0.018), ("", "999", 9, 0.002),  # unknown calling code → market Other
]
MARKETS = {"BR": "Brazil", "IN": "India", "ID": "Indonesia", "MX": "Mexico", "US": "North America",
           "CA": "North America", "CO": "Colombia", "DE": "Germany", "GB": "United Kingdom", "NG": "Nigeria",
           "EG": "Egypt", "AR": "Argentina", "JM": "Rest of Latin America"}
TIMEZONES = ["UTC", "America/Sao_Paulo", "Asia/Kolkata", "America/New_York", "Europe/Berlin", "Asia/Jakarta"]
BUSINESS_COUNTRIES = ["BR", "BR", "IN", "US", "DE", "ID"]
STATUS_NAMES = ["sent", "delivered", "read", "failed", "received"]
KIND_NAMES = ["", "template", "free_form"]
CATEGORY_NAMES = ["", "marketing", "utility", "authentication"]
ENTRY_NAMES = ["", "ad", "page_cta"]


# --------------------------------------------------------------------------- accounts and rates
def make_accounts(n_accounts: int = 12) -> pd.DataFrame:
    """Accounts W000.. with varied timezones and business countries; EUR for Berlin; the first three
    share portfolio PF-1 and the next two PF-2 (volume tiers across accounts)."""
    rows = []
    for i in range(n_accounts):
        tz = TIMEZONES[i % len(TIMEZONES)]
        portfolio = "PF-1" if i < 3 else "PF-2" if i < 5 else ""
        rows.append({"waba_id": f"W{i:03d}", "name": f"Account {i}", "timezone": tz,
                     "currency": "EUR" if tz == "Europe/Berlin" else "USD",
                     "business_country": BUSINESS_COUNTRIES[i % len(BUSINESS_COUNTRIES)], "portfolio_id": portfolio})
    return pd.DataFrame(rows)


def make_rate_card(currencies=("USD", "EUR")) -> pd.DataFrame:
    """A long-format rate card covering every era (NBP to PMP-2) for the generator's markets + Other."""
    markets = sorted(set(MARKETS.values())) + ["Other"]
    plan = [  # (effective_from, category, base rate, tiers or None, markets or None = all)
        ("2021-01-01", "notification", 0.020, [(1, 1000, 1.0), (1001, None, 0.8)], None),
        ("2022-02-01", "user_initiated", 0.030, None, None),
        ("2022-02-01", "business_initiated", 0.045, None, None),
        ("2023-06-01", "marketing", 0.060, None, None),
        ("2023-06-01", "utility", 0.020, None, None),
        ("2023-06-01", "authentication", 0.018, None, None),
        ("2023-06-01", "service", 0.015, None, None),
        ("2024-06-01", "authentication_international", 0.035, None, ["India", "Indonesia"]),
        ("2025-07-01", "marketing", 0.062, None, None),
        ("2025-07-01", "utility", 0.010, [(1, 1000, 1.0), (1001, 10000, 0.8), (10001, None, 0.6)], None),
        ("2025-07-01", "authentication", 0.012, [(1, 1000, 1.0), (1001, 10000, 0.85), (10001, None, 0.7)], None),
        ("2025-07-01", "authentication_international", 0.036,
         [(1, 1000, 1.0), (1001, None, 0.9)], ["India", "Indonesia"]),
        ("2026-10-01", "marketing", 0.064, None, None),
        ("2026-10-01", "utility", 0.011, [(1, 1000, 1.0), (1001, 10000, 0.8), (10001, None, 0.6)], None),
        ("2026-10-01", "authentication", 0.013, [(1, 1000, 1.0), (1001, 10000, 0.85), (10001, None, 0.7)], None),
        ("2026-10-01", "authentication_international", 0.037,
         [(1, 1000, 1.0), (1001, None, 0.9)], ["India", "Indonesia"]),
        ("2026-10-01", "service", 0.004, None, None),
    ]
    rows = []
    for eff, cat, base, tiers, only in plan:
        for mi, market in enumerate(markets):
            if only and market not in only:
                continue
            factor = 0.6 + 0.07 * mi
            for cur in currencies:
                fx = 0.92 if cur == "EUR" else 1.0
                for t_from, t_to, t_factor in tiers or [(None, None, 1.0)]:
                    rows.append({"effective_from": date.fromisoformat(eff), "market": market, "currency": cur,
                                 "category": cat, "tier_from": t_from, "tier_to": t_to,
                                 "rate": round(base * factor * fx * t_factor, 6)})
    out = pd.DataFrame(rows)
    out["tier_from"] = out["tier_from"].astype("Int64")
    out["tier_to"] = out["tier_to"].astype("Int64")
    return out


# --------------------------------------------------------------------------- messages
def _choice(rng, n, values, weights) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(values), size=n, p=p / p.sum())


def generate_table(n: int, seed: int = 0, start: str | date = "2025-06-01", days: int = 61,
                   accounts: pd.DataFrame | None = None, phones_per_account: int = 2) -> pa.Table:
    """About ``n`` message rows as a pyarrow Table (see module docstring)."""
    rng = np.random.default_rng(seed)
    accounts = make_accounts() if accounts is None else accounts
    start_s = int(pd.Timestamp(start, tz="UTC").value // SECOND_NS)
    mean_len = 0.55 * (1 + 0.6 + 1 + 1.4) + 0.45 * (1 + 0.4 * (1 + 1 + 0.8))   # expected session length
    n_sessions = max(1, int(n / mean_len / 1.01))
    n_users = max(20, int(n_sessions / max(days, 1) / 0.1))

    # users: country, number, home phone number (one business number each)
    c_idx = _choice(rng, n_users, COUNTRIES, [c[3] for c in COUNTRIES])
    prefixes = np.array([c[1] for c in COUNTRIES], dtype=object)[c_idx]
    width = np.array([c[2] for c in COUNTRIES])[c_idx]
    local = (rng.random(n_users) * (10.0 ** width)).astype(np.int64)
    local_str = pd.Series(local).astype(str)
    for w in np.unique(width):                       # loop over number widths (a handful)
        sel = width == w
        local_str[sel] = local_str[sel].str.zfill(int(w))
    user_numbers = pd.Series(prefixes).astype(str) + local_str
    user_numbers = user_numbers.drop_duplicates()
    n_users = len(user_numbers)
    phone_ids = [f"{w}{k}" for w in accounts["waba_id"] for k in range(phones_per_account)]
    phone_waba = [w for w in accounts["waba_id"] for _ in range(phones_per_account)]
    user_phone = rng.integers(0, len(phone_ids), n_users)

    # sessions
    s_user = rng.integers(0, n_users, n_sessions)
    s_start = start_s + rng.integers(0, max(days, 1), n_sessions) * DAY_S + rng.integers(0, DAY_S, n_sessions)
    user_started = rng.random(n_sessions) < 0.55
    m_in = np.where(user_started, 1 + rng.binomial(2, 0.3, n_sessions), 0)
    replied = ~user_started & (rng.random(n_sessions) < 0.4)
    m_out = np.where(user_started, 1 + rng.poisson(1.4, n_sessions),
                     1 + np.where(replied, 1 + rng.poisson(0.8, n_sessions), 0))
    k = m_in + m_out + replied
    total = int(k.sum())
    sess = np.repeat(np.arange(n_sessions), k)
    first = np.cumsum(k) - k
    pos = np.arange(total) - first[sess]

    gap = rng.exponential(120.0, total)
    long_gap = rng.random(total) < 0.05
    gap = np.where(long_gap, rng.uniform(3600, 30 * 3600, total), gap).astype(np.int64)
    gap[first] = 0
    csum = np.cumsum(gap)
    offset = csum - csum[first][sess]
    t = s_start[sess] + offset

    us = user_started[sess]
    inbound = np.where(us, pos < m_in[sess], replied[sess] & (pos == 1))
    # outbound kinds
    u_tpl = us & ~inbound & (rng.random(total) < 0.15)
    b_tpl = ~us & (pos == 0)
    template = u_tpl | b_tpl
    # categories as codes into CATEGORY_NAMES (0 = empty): business-started sessions open with any
    # template category, user-started ones mostly answer with utility; ~1% of templates lack a category
    cat_u = np.array([2, 3, 1], dtype=np.int8)[_choice(rng, total, "uam", [0.7, 0.15, 0.15])]
    cat_b = np.array([1, 2, 3], dtype=np.int8)[_choice(rng, total, "mua", [0.5, 0.3, 0.2])]
    cat = np.where(b_tpl, cat_b, cat_u)
    cat = np.where(template & (rng.random(total) >= 0.01), cat, 0).astype(np.int8)
    entry = np.zeros(total, dtype=np.int8)                         # codes into ENTRY_NAMES
    ep_first = us & (rng.random(n_sessions) < 0.06)[sess] & (pos == 0)
    entry[ep_first] = np.where(rng.random(int(ep_first.sum())) < 0.8, 1, 2)

    # statuses (codes into STATUS_NAMES)
    r = rng.random(total)
    status = np.where(inbound, 4, np.where(r < 0.02, 3, np.where(r < 0.60, 1, 2))).astype(np.int8)
    delivered = t + rng.integers(1, 10, total)
    read = delivered + rng.exponential(300.0, total).astype(np.int64) + 1
    has_delivered = ~inbound & (status != 3) & (rng.random(total) >= 0.001)
    has_read = ~inbound & (status == 2)
    kind = np.where(inbound, 0, np.where(template, 1, 2)).astype(np.int8)   # codes into KIND_NAMES

    # duplicates: ~1% of rows again as an earlier "sent" webhook (outbound) or a repeated inbound
    dup = np.flatnonzero(rng.random(total) < 0.01)
    order = np.concatenate([np.arange(total), dup])
    dup_mask = np.zeros(len(order), dtype=bool)
    dup_mask[total:] = True
    ids = pa.array(rng.permutation(total)).cast(pa.string())
    msg_ids = pc.binary_join_element_wise(pa.scalar("wamid.G"), ids, "")

    users = s_user[sess]
    phone = user_phone[users]

    def take(values, idx):
        return pa.DictionaryArray.from_arrays(pa.array(np.asarray(idx).astype(np.int32)),
                                              pa.array(list(values), type=pa.string())).cast(pa.string())

    def ts(seconds, valid):
        return pa.array((seconds * 1_000_000).astype(np.int64), type=pa.timestamp("us", tz="UTC"), mask=~valid)

    st = status[order]
    st[dup_mask] = np.where(inbound[order][dup_mask], 4, 0)
    hd = has_delivered[order] & ~dup_mask
    hr = has_read[order] & ~dup_mask
    table = pa.table({
        "message_id": msg_ids.take(pa.array(order)),
        "waba_id": take(phone_waba, phone[order]),
        "phone_number_id": take(phone_ids, phone[order]),
        "user_wa_id": take(user_numbers.tolist(), users[order]),
        "direction": take(["outbound", "inbound"], inbound[order].astype(np.int8)),
        "sent_at": ts(t[order], np.ones(len(order), dtype=bool)),
        "status": take(STATUS_NAMES, st),
        "delivered_at": ts(delivered[order], hd),
        "read_at": ts(read[order], hr),
        "message_kind": take(KIND_NAMES, kind[order]),
        "template_category": take(CATEGORY_NAMES, cat[order]),
        "entry_point": take(ENTRY_NAMES, entry[order]),
    })
    return table


def generate_messages(n: int, seed: int = 0, start: str | date = "2025-06-01", days: int = 61,
                      accounts: pd.DataFrame | None = None, phones_per_account: int = 2) -> pd.DataFrame:
    """About ``n`` canonical message rows (``MESSAGE_COLUMNS``), UTC instants, ``""`` for empty strings."""
    frame = generate_table(n, seed, start, days, accounts, phones_per_account).to_pandas()
    for c in ("sent_at", "delivered_at", "read_at"):
        frame[c] = frame[c].astype("datetime64[ns, UTC]")
    return frame


def make_invoice(accounts: pd.DataFrame, months: list[str]) -> pd.DataFrame:
    """A small invoice (one marketing line per account and month) so that a whole run has an invoice."""
    rows = [{"invoice_id": f"INV-{m}", "waba_id": w, "phone_number_id": "", "billing_month": m, "market": "Brazil",
             "pricing_model": "PMP", "category": "marketing", "pricing_type": "regular", "quantity": 100,
             "amount": 4.5, "currency": c} for m in months for w, c in zip(accounts["waba_id"], accounts["currency"])]
    return pd.DataFrame(rows)


def write_dataset(out_dir: str, n: int, seed: int = 0, start: str = "2025-06-01", days: int = 61,
                  period_months: list[str] | None = None, n_accounts: int = 12) -> dict:
    """Write ``messages.parquet``, ``accounts.csv``, ``rates.csv`` and ``invoice.csv`` under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    accounts = make_accounts(n_accounts)
    table = generate_table(n, seed, start, days, accounts)
    paths = {"messages": os.path.join(out_dir, "messages.parquet"), "accounts": os.path.join(out_dir, "accounts.csv"),
             "rate_card": os.path.join(out_dir, "rates.csv"), "invoice": os.path.join(out_dir, "invoice.csv")}
    pq.write_table(table, paths["messages"], row_group_size=1_000_000)
    accounts.to_csv(paths["accounts"], index=False)
    make_rate_card().to_csv(paths["rate_card"], index=False)
    months = period_months or [(pd.Timestamp(start) + pd.Timedelta(days=days - 1)).strftime("%Y-%m")]
    make_invoice(accounts, months).to_csv(paths["invoice"], index=False)
    paths["rows"] = table.num_rows
    return paths


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", default="2025-06-01")
    ap.add_argument("--days", type=int, default=61)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "_data", "generated"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    paths = write_dataset(args.out, args.messages, args.seed, args.start, args.days)
    print(f"wrote {paths['rows']:,} message rows to {args.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()

"""Golden scenarios: per-message pricing (rule book sections 4 and 5)."""
import pandas as pd

from builders import inbound, msg, run_windows


def test_pmp_utility_in_and_out_of_csw():
    # in1 08-01 10:00 → CSW [08-01 10:00, 08-02 10:00).
    # u1 utility 11:00 inside the CSW → free_customer_service unit. m1 marketing → regular unit.
    # f1 free-form 12:00 → free, not a unit. u2 utility 08-02 10:00:00 = CSW end → regular.
    # a1 authentication → regular.
    run = run_windows([
        inbound("in1", "2025-08-01T10:00:00Z"),
        msg("u1", "2025-08-01T11:00:00Z", category="utility"),
        msg("m1", "2025-08-01T11:30:00Z", category="marketing"),
        msg("f1", "2025-08-01T12:00:00Z", kind="free_form"),
        msg("u2", "2025-08-02T10:00:00Z", category="utility"),
        msg("a1", "2025-08-02T10:30:00Z", category="authentication"),
    ])
    assert run.summary() == [("u1", "utility", "free_customer_service", 1), ("m1", "marketing", "regular", 1),
                             ("u2", "utility", "regular", 1), ("a1", "authentication", "regular", 1)]
    u = run.unit("u1")
    assert (u["pricing_model"], u["era"], pd.isna(u["expires_at"]), bool(u["csw_open"])) == ("PMP", "PMP", True, True)
    assert run.outcome()["f1"] == ("free_not_unit", "")
    assert run.codes() == []
    assert run.counts == {"inbound": 1, "non_billable": 0, "billable_outbound": 5, "rejected": 0, "units": 4}


def test_pmp2_free_form_service_units_and_utility_in_csw_charged():
    # PMP-2 (from 2026-10-01): u1 utility inside the CSW is regular; f1 free-form is a `service` unit;
    # f2 free-form outside the CSW (in1 + 24h = 10-06 10:00) → warning, still a service unit.
    run = run_windows([
        inbound("in1", "2026-10-05T10:00:00Z"),
        msg("u1", "2026-10-05T11:00:00Z", category="utility"),
        msg("f1", "2026-10-05T12:00:00Z", kind="free_form"),
        msg("f2", "2026-10-07T12:00:00Z", kind="free_form"),
    ])
    assert run.summary() == [("u1", "utility", "regular", 1), ("f1", "service", "regular", 1),
                             ("f2", "service", "regular", 1)]
    assert set(run.units["era"]) == {"PMP-2"} and set(run.units["pricing_model"]) == {"PMP"}
    assert run.codes() == [("warning", "free_form_outside_csw", "f2")]


def test_pmp_template_without_category_is_excluded():
    run = run_windows([msg("x1", "2025-09-01T10:00:00Z", category="")])
    assert run.units.empty
    f = run.findings.iloc[0]
    assert (f["severity"], f["code"], f["row"], f["column"], f["message_id"]) == \
        ("error", "missing_template_category", 1, "template_category", "x1")
    assert run.outcome() == {"x1": ("excluded", "")}

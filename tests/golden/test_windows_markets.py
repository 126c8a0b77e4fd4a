"""Golden scenarios: user numbers → country → market (rule book section 0, "Market")."""
from builders import msg, run_windows


def test_unparseable_and_unknown_calling_code_one_warning_per_number():
    # "12ab" is not digits → unparseable_number; "99912345678" has no assigned calling code
    # (999) → unknown_calling_code. Each number has two units (2024-03-01 and 03-03) but one warning.
    # Both go to market Other with an empty country. The Brazilian number resolves to Brazil.
    run = run_windows([
        msg("a1", "2024-03-01T10:00:00Z", user="12ab"),
        msg("a2", "2024-03-03T10:00:00Z", user="12ab"),
        msg("b1", "2024-03-01T10:00:00Z", user="99912345678"),
        msg("b2", "2024-03-03T10:00:00Z", user="99912345678"),
        msg("c1", "2024-03-01T10:00:00Z", user="5511999990001"),
    ])
    assert run.codes() == [("warning", "unknown_calling_code", "b1"), ("warning", "unparseable_number", "a1")]
    assert set(run.findings["column"]) == {"user_wa_id"}
    got = {m: (run.unit(m)["country"], run.unit(m)["market"]) for m in ("a1", "a2", "b1", "b2", "c1")}
    assert got == {"a1": ("", "Other"), "a2": ("", "Other"), "b1": ("", "Other"), "b2": ("", "Other"),
                   "c1": ("BR", "Brazil")}

"""The read stage: accounts first, then the reference files (rate cards, invoices) in a second thread
while the message logs are read. Same inputs and the same error as reading one after the other."""
from __future__ import annotations

import os

import pytest

from reconcile.contracts import Period
from reconcile.pipeline import RunConfig, load_inputs
from reconcile.quality import InputError, QualityLog

BASE = os.path.join(os.path.dirname(__file__), "..", "data", "bad", "base")


def config(tmp_path, *, messages=None, rates=None) -> RunConfig:
    return RunConfig(messages=[messages or os.path.join(BASE, "messages.csv")],
                     accounts=os.path.join(BASE, "accounts.csv"),
                     rate_cards=[rates or os.path.join(BASE, "rates.csv")],
                     invoices=[os.path.join(BASE, "invoice.csv")], period=Period.parse("2025-07"),
                     out=str(tmp_path / "out"), warehouse="none")


def broken(tmp_path, name: str) -> str:
    path = tmp_path / name
    path.write_text("")                   # an empty file: exit 2 naming it
    return str(path)


def test_every_input_is_read_and_listed_in_order(tmp_path):
    quality = QualityLog()
    inputs = load_inputs(config(tmp_path), quality)
    assert len(inputs.messages) > 0 and len(inputs.rates) > 0 and len(inputs.invoice_lines) > 0
    assert [i.kind for i in inputs.infos] == ["accounts", "rate_card", "invoice", "messages"]
    assert inputs.message_rows.rows_in == inputs.infos[-1].rows


def test_a_broken_reference_file_is_the_error_even_when_the_messages_fail_too(tmp_path):
    rates, messages = broken(tmp_path, "rates.csv"), broken(tmp_path, "messages.csv")
    with pytest.raises(InputError) as both:
        load_inputs(config(tmp_path, rates=rates, messages=messages), QualityLog())
    assert both.value.source == rates
    with pytest.raises(InputError) as only_rates:
        load_inputs(config(tmp_path, rates=rates), QualityLog())
    assert only_rates.value.source == rates
    with pytest.raises(InputError) as only_messages:
        load_inputs(config(tmp_path, messages=messages), QualityLog())
    assert only_messages.value.source == messages


def test_messages_of_accounts_outside_waba_are_left_out_and_counted(tmp_path):
    from reconcile.io import tables
    from reconcile.pipeline import read_message_logs, select_accounts

    (tmp_path / "accounts.csv").write_text("waba_id,currency\nW1,USD\nW2,USD\nW3,EUR\n")
    header = "message_id,waba_id,phone_number_id,user_wa_id,direction,sent_at,status\n"
    rows = [("m1", "W1"), ("m2", "W2"), ("m3", "W3"), ("m4", "W2"), ("m5", "W9"), ("m6", "W1")]
    (tmp_path / "log.csv").write_text(header + "".join(f"{m},{w},P,44,outbound,2025-07-01T10:00:00Z,sent\n"
                                                       for m, w in rows))
    quality = QualityLog()
    cfg = RunConfig(messages=[str(tmp_path / "log.csv")], accounts=str(tmp_path / "accounts.csv"), rate_cards=[],
                    invoices=[], period=Period.parse("2025-07"), wabas=["W1", "W3"])
    all_accounts = tables.read_accounts(cfg.accounts, quality)
    messages, _, ledger = read_message_logs(cfg, quality, all_accounts, select_accounts(all_accounts, cfg))
    assert messages["message_id"].tolist() == ["m1", "m3", "m6"]
    assert messages["waba_id"].tolist() == ["W1", "W3", "W1"]
    # six rows: m5's account is unknown (rejected by the reader), m2 and m4 are outside --waba
    assert (ledger.rows_in, ledger.rejected_by_readers, ledger.out_of_scope) == (6, 1, 2)

"""Webhook adapter on copies of Meta's example bodies."""
from __future__ import annotations

import os

import pandas as pd

from reconcile.io import tables
from reconcile.io.meta_webhooks import read_webhook_lines
from reconcile.quality import QualityLog

META = os.path.join(os.path.dirname(__file__), "..", "data", "inputs", "meta")
WABA, PHONE = "102290129340398", "106540352242922"


def _ts(seconds):
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def test_cbp_webhooks_one_row_per_event():
    q = QualityLog()
    m, infos = tables.read_messages([os.path.join(META, "webhook_cbp.jsonl")], q)
    assert len(q) == 0 and infos[0].rows == 5
    assert set(m["waba_id"]) == {WABA} and set(m["phone_number_id"]) == {PHONE}
    assert m["row"].tolist() == [1, 2, 3, 4, 5]
    inbound = m.iloc[0]
    assert (inbound["direction"], inbound["status"], inbound["user_wa_id"], inbound["entry_point"]) == (
        "inbound", "received", "5511987650001", "ad")
    assert inbound["sent_at"] == _ts(1700000000)
    sent, delivered = m.iloc[1], m.iloc[2]
    assert sent["message_id"] == delivered["message_id"]
    assert (sent["status"], sent["sent_at"], pd.isna(sent["delivered_at"])) == ("sent", _ts(1700000300), True)
    assert (delivered["status"], pd.isna(delivered["sent_at"]), delivered["delivered_at"]) == (
        "delivered", True, _ts(1700000302))
    # referral_conversion: a template with an empty category; evidence kept
    assert (sent["message_kind"], sent["template_category"]) == ("template", "")
    assert (sent["pricing_billable"], sent["pricing_model_reported"], sent["pricing_category_reported"],
            sent["conversation_id_reported"]) == ("false", "CBP", "referral_conversion",
                                                  "c0a1f2e3d4b5a69788796a5b4c3d2e1f")
    assert (m.iloc[3]["message_kind"], m.iloc[3]["template_category"]) == ("template", "marketing")
    failed = m.iloc[4]
    assert (failed["status"], failed["message_kind"], failed["template_category"]) == ("failed", "", "")


def test_pmp_webhooks_categories():
    m, _ = tables.read_messages([os.path.join(META, "webhook_pmp.jsonl")], QualityLog())
    assert m[["status", "message_kind", "template_category", "pricing_type_reported"]].values.tolist() == [
        ["delivered", "template", "marketing", "regular"],
        ["read", "template", "utility", "free_customer_service"],
        ["delivered", "template", "authentication", "regular"],      # authentication-international
        ["delivered", "free_form", "", "free_customer_service"],     # service
        ["delivered", "template", "", "free_entry_point"],           # referral_conversion
    ]
    assert m.iloc[1]["read_at"] == _ts(1752000600) and pd.isna(m.iloc[1]["delivered_at"])
    assert m.iloc[2]["user_wa_id"] == "919876500006"


def test_bad_json_line_is_a_finding_and_marketing_lite_and_page_referral():
    lines = [
        "{not json",
        '{"entry":[{"id":"W","changes":[{"value":{"metadata":{"phone_number_id":"P"},'
        '"messages":[{"from":"1","id":"in1","timestamp":"1752000000","referral":{"source_type":"post"}}],'
        '"statuses":[{"id":"o1","status":"delivered","timestamp":"1752000001","recipient_id":"1",'
        '"pricing":{"category":"marketing_lite"}}]}}]}]}',
    ]
    q = QualityLog()
    m = read_webhook_lines(lines, "hooks.jsonl", q)
    f = q.frame()
    assert f[["severity", "code", "source", "row"]].values.tolist() == [["error", "bad_json", "hooks.jsonl", 1]]
    assert m[["message_id", "entry_point", "message_kind", "template_category", "row"]].values.tolist() == [
        ["in1", "page_cta", "", "", 2], ["o1", "", "template", "marketing", 2]]

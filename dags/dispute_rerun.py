"""Dispute rerun: recompute one or more accounts for a period and write a dispute-scoped report.

Triggered by hand (``schedule=None``) with Params: ``dispute_id``, ``wabas``, ``period`` and,
optionally, the ``user_numbers`` and ``phone_number_ids`` the dispute is about. As the data
contracts require, the charges are computed on **whole accounts** (free and volume tiers depend on
all of an account's or portfolio's traffic) and only what is written is filtered: the report files
under ``output_prefix`` (default ``s3://reconcile/disputes/{dispute_id}/{period}/``) hold the
disputed units and the variance groups they belong to, and the warehouse slice has scope
``dispute:<id>`` — it never replaces the monthly ``full`` slice.

Safe to run while ``monthly_reconciliation`` runs: its outputs, its staging folder and its
warehouse scope are its own. See docs/airflow.md.
"""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, get_current_context, task

import reconcile_airflow as support


@dag(
    dag_id="dispute_rerun",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params=support.dispute_params(),
    tags=["reconciliation", "whatsapp", "dispute"],
    doc_md=__doc__,
)
def dispute_rerun():
    @task
    def plan() -> dict:
        context = get_current_context()
        return support.plan_dispute(dict(context["params"]), context)

    @task
    def list_message_logs(plan: dict) -> list[str]:
        return support.list_objects(plan, "messages")

    @task
    def rerun(plan: dict, message_logs: list[str]) -> dict:
        from reconcile import pipeline

        with support.aws_environment(plan["aws_conn_id"]) as endpoint:
            config = support.run_config(plan, messages=message_logs, endpoint_url=endpoint,
                                        warehouse=support.warehouse_url(plan["warehouse_conn_id"]))
            result = pipeline.run(config)
        counts = result.run_record["counts"]
        return {"run_id": result.run_record["run_id"], "scope": result.run_record["scope"], "out": result.out,
                "units": counts["units"], "variance_by_status": counts["variance_by_status"]}

    the_plan = plan()
    rerun(the_plan, list_message_logs(the_plan))


dispute_rerun()

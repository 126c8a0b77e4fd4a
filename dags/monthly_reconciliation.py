"""Monthly WhatsApp billing reconciliation (scale-out form of ``reconcile run``).

Every month (Variable ``reconcile_monthly_schedule``, default ``0 6 5 * *``) the run reconciles the
month before its logical date:

1. ``plan`` — the period, the S3 locations (Params with ``{period}`` templates) and a work prefix
   private to this run;
2. ``wait_for_invoice`` — a sensor (reschedule mode) until an object exists under the period's
   invoice prefix;
3. ``list_message_logs`` — the message-log objects of the period and its lookback month(s);
4. ``prepare_shards`` — read, deduplicate by ``message_id`` (all copies of an id together), split by
   a stable hash of the user number into ``shards`` Parquet files under the work prefix;
5. ``window_shard`` — one mapped task per shard: the engine's window pass (raw units);
6. ``finalize_and_publish`` — merge, account-level passes and pricing, compare with the invoice,
   publish the report files (``_SUCCESS`` last) and the warehouse slice (scope ``full``);
7. ``clean_work_prefix`` — delete the run's scratch objects once everything is published.

S3 credentials come from the Airflow connection ``aws_conn_id`` (extra ``endpoint_url`` for MinIO),
the warehouse from the Postgres connection ``warehouse_conn_id``; none of them appear in code,
XCom or logs. See docs/airflow.md.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, get_current_context, task

import reconcile_airflow as support


@dag(
    dag_id="monthly_reconciliation",
    schedule=support.variable(support.SCHEDULE_VARIABLE, support.DEFAULT_SCHEDULE),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=support.monthly_params(),
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["reconciliation", "whatsapp", "billing"],
    doc_md=__doc__,
)
def monthly_reconciliation():
    @task
    def plan() -> dict:
        context = get_current_context()
        return support.plan_monthly(dict(context["params"]), context)

    @task.sensor(poke_interval=support.variable(support.POKE_VARIABLE, support.DEFAULT_POKE_S),
                 timeout=support.variable(support.TIMEOUT_VARIABLE, support.DEFAULT_TIMEOUT_S),
                 mode="reschedule")
    def wait_for_invoice(plan: dict):
        from airflow.sdk import PokeReturnValue

        from reconcile.io import locations
        from reconcile.quality import InputError

        with support.aws_environment(plan["aws_conn_id"]) as endpoint:
            locations.set_default_endpoint(endpoint)
            try:
                found = [f for prefix in plan["invoices"] for f in locations.list_files(prefix)]
            except InputError:
                found = []
        return PokeReturnValue(is_done=bool(found), xcom_value=found)

    @task
    def list_message_logs(plan: dict) -> list[str]:
        return support.list_objects(plan, "messages")

    @task
    def prepare_shards(plan: dict, message_logs: list[str]) -> list[dict]:
        from reconcile import shards

        with support.aws_environment(plan["aws_conn_id"]) as endpoint:
            config = support.run_config(plan, messages=message_logs, endpoint_url=endpoint)
            return shards.prepare_shards(config, plan["work_prefix"], plan["shards"])["shards"]

    @task(max_active_tis_per_dagrun=16)
    def window_shard(plan: dict, shard: dict) -> dict:
        from reconcile import shards

        with support.aws_environment(plan["aws_conn_id"]) as endpoint:
            config = support.run_config(plan, endpoint_url=endpoint)
            return shards.window_shard(config, shard, plan["work_prefix"])

    @task
    def finalize_and_publish(plan: dict, message_logs: list[str], windowed: list[dict]) -> dict:
        from reconcile import shards

        with support.aws_environment(plan["aws_conn_id"]) as endpoint:
            config = support.run_config(plan, messages=message_logs, endpoint_url=endpoint,
                                        warehouse=support.warehouse_url(plan["warehouse_conn_id"]))
            prepared = shards.read_prepared(plan["work_prefix"])
            result = shards.finish_sharded_run(config, prepared, list(windowed))
        counts = result.run_record["counts"]
        return {"run_id": result.run_record["run_id"], "out": result.out, "units": counts["units"],
                "variance_by_status": counts["variance_by_status"]}

    @task
    def clean_work_prefix(plan: dict, published: dict) -> int:
        from reconcile import shards

        with support.aws_environment(plan["aws_conn_id"]) as endpoint:
            from reconcile.io import locations

            locations.set_default_endpoint(endpoint)
            return shards.remove_prefix(plan["work_prefix"])

    the_plan = plan()
    invoice = wait_for_invoice(the_plan)
    logs = list_message_logs(the_plan)
    invoice >> logs                      # nothing heavy starts before the invoice is there
    shard_files = prepare_shards(the_plan, logs)
    windowed = window_shard.partial(plan=the_plan).expand(shard=shard_files)
    published = finalize_and_publish(the_plan, logs, windowed)
    clean_work_prefix(the_plan, published)


monthly_reconciliation()

"""Airflow glue shared by the reconciliation DAGs (not a DAG file: listed in ``.airflowignore``).

* :data:`MONTHLY_DEFAULTS` / :func:`monthly_params` / :func:`dispute_params`: the documented Params;
* :func:`variable`: Airflow Variables with defaults (schedule, sensor timing);
* :func:`plan_monthly` / :func:`plan_dispute`: Params + run context → a JSON plan (URIs, period, shards);
* :func:`run_config`: a plan → :class:`reconcile.pipeline.RunConfig`;
* :func:`aws_environment`: the AWS connection → credentials and endpoint for boto3 (environment
  variables set for the duration of a task only; nothing is logged or returned to XCom);
* :func:`warehouse_url`: the Postgres connection → a SQLAlchemy URL (never logged; the run record
  stores it redacted).

Only the standard library is imported at module level, so DAG parsing stays cheap; Airflow's and the
project's modules are imported inside the functions.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Iterator

# --------------------------------------------------------------------------- defaults
BUCKET = "reconcile"
MONTHLY_DEFAULTS: dict[str, Any] = {
    "period": "",
    "messages_prefix": f"s3://{BUCKET}/messages/{{period}}/",
    "invoices_prefix": f"s3://{BUCKET}/invoices/{{period}}/",
    "accounts": f"s3://{BUCKET}/reference/accounts.csv",
    "rate_cards": [f"s3://{BUCKET}/reference/rate_cards/"],
    "market_map": "",
    "report_prefix": f"s3://{BUCKET}/reports/{{period}}/",
    "work_prefix": f"s3://{BUCKET}/work/{{dag_id}}/{{run_id}}/",
    "aws_conn_id": "aws_default",
    "warehouse_conn_id": "reconcile_warehouse",
    "shards": 4,
    "lookback_months": 1,
    "tolerance": 0.01,
    "wabas": [],
}
DISPUTE_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in MONTHLY_DEFAULTS.items() if k not in ("report_prefix", "work_prefix", "wabas", "shards")},
    "dispute_id": "",
    "wabas": [],
    "user_numbers": [],
    "phone_number_ids": [],
    "output_prefix": f"s3://{BUCKET}/disputes/{{dispute_id}}/{{period}}/",
}

#: Airflow Variables read when the DAG files are parsed (``AIRFLOW_VAR_<NAME>`` works too)
SCHEDULE_VARIABLE = "reconcile_monthly_schedule"
DEFAULT_SCHEDULE = "0 6 5 * *"          # 06:00 UTC on the 5th: Meta's invoice for the month is out
POKE_VARIABLE = "reconcile_invoice_poke_interval_s"
DEFAULT_POKE_S = 30 * 60
TIMEOUT_VARIABLE = "reconcile_invoice_timeout_s"
DEFAULT_TIMEOUT_S = 5 * 24 * 3600


def variable(key: str, default: Any) -> Any:
    """An Airflow Variable, or ``default`` when it is not set (or no Variable store is reachable)."""
    from airflow.sdk import Variable

    try:
        value = Variable.get(key, default=default)
    except Exception:   # parsing outside a configured Airflow (e.g. a linter): use the default
        return default
    return type(default)(value) if default is not None and not isinstance(value, type(default)) else value


# --------------------------------------------------------------------------- params
def _describe(defaults: dict, docs: dict) -> dict:
    from airflow.sdk import Param

    out = {}
    for name, value in defaults.items():
        kind = {bool: "boolean", int: "integer", float: "number", list: "array"}.get(type(value), "string")
        schema: dict[str, Any] = {"type": kind}
        if name == "shards":
            schema["minimum"] = 1
        if name in ("lookback_months",):
            schema["minimum"] = 0
        if kind == "array":
            schema["items"] = {"type": "string"}
        out[name] = Param(value, description=docs[name], **schema)
    return out


_DOCS = {
    "period": "Billing month(s) YYYY-MM or YYYY-MM..YYYY-MM; empty = the month before the run's logical date.",
    "messages_prefix": "Message logs of one month; {period} is replaced by each month of the period and lookback.",
    "invoices_prefix": "Invoice files (CSV or analytics JSON) of the period; the run waits for the first object.",
    "accounts": "accounts.csv (file or prefix).",
    "rate_cards": "Rate-card files or prefixes (long or Meta wide format).",
    "market_map": "country,market CSV replacing the packaged map; empty = packaged default.",
    "report_prefix": "Where the report files go; _SUCCESS is written last.",
    "work_prefix": "Scratch space of one run (shards, raw units); {dag_id} and {run_id} keep runs apart.",
    "aws_conn_id": "Airflow connection for S3 (extra endpoint_url for MinIO).",
    "warehouse_conn_id": "Airflow Postgres connection of the warehouse; empty = no warehouse.",
    "shards": "Number of mapped window tasks (messages split by a hash of the user number).",
    "lookback_months": "Months of history before the period given to the engine (rule book section 0).",
    "tolerance": "Amount difference per variance line tolerated as a match, in the account currency.",
    "wabas": "Limit the run to these WABA ids; empty = every account of the accounts file.",
    "dispute_id": "Identifier of the dispute: the warehouse scope is dispute:<id>.",
    "user_numbers": "User numbers (E.164 digits) the dispute is about; empty = every user.",
    "phone_number_ids": "Business phone_number_ids the dispute is about; empty = every number.",
    "output_prefix": "Where the dispute's report files go; {dispute_id} and {period} are filled in.",
}


def monthly_params() -> dict:
    return _describe(MONTHLY_DEFAULTS, _DOCS)


def dispute_params() -> dict:
    params = _describe(DISPUTE_DEFAULTS, _DOCS)
    from airflow.sdk import Param

    params["dispute_id"] = Param("", type="string", minLength=1, pattern=r"^[A-Za-z0-9._-]+$",
                                 description=_DOCS["dispute_id"])
    params["period"] = Param("", type="string", pattern=r"^\d{4}-\d{2}(\.\.\d{4}-\d{2})?$",
                             description="Billing month(s) of the dispute, YYYY-MM or YYYY-MM..YYYY-MM.")
    params["wabas"] = Param([], type="array", items={"type": "string"}, minItems=1,
                            description="WABA ids of the dispute: computed on whole accounts.")
    return params


# --------------------------------------------------------------------------- plans
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(text: str) -> str:
    """A run id as a path component (``manual__2025-08-05T06:00:00+00:00`` → ``manual__2025-08-05T06_00_00_00_00``)."""
    return _SAFE.sub("_", str(text)).strip("_") or "run"


def _run_date(context) -> date:
    logical = context.get("logical_date")
    if logical is None:                      # Airflow 3: a manual run may have no logical date
        logical = context["dag_run"].run_after
    return logical.date() if isinstance(logical, datetime) else logical


def plan_monthly(params: dict, context) -> dict:
    """Params + run context → the run's plan (only plain JSON values: it travels as XCom)."""
    from reconcile.contracts import Period, months_with_lookback, previous_month

    period = Period.parse(params.get("period") or previous_month(_run_date(context)))
    months = months_with_lookback(period, int(params["lookback_months"]))
    slug = period.slug
    dag_id, run_id = context["dag"].dag_id, safe_component(context["run_id"])
    return {
        "dag_id": dag_id, "run_id": run_id, "period": str(period), "months": months,
        "messages": [params["messages_prefix"].format(period=m) for m in months],
        "invoices": [params["invoices_prefix"].format(period=slug)],
        "accounts": params["accounts"].format(period=slug),
        "rate_cards": [p.format(period=slug) for p in params["rate_cards"]],
        "market_map": params.get("market_map") or None,
        "out": params["report_prefix"].format(period=slug),
        "work_prefix": params.get("work_prefix", "").format(dag_id=dag_id, run_id=run_id, period=slug),
        "aws_conn_id": params["aws_conn_id"], "warehouse_conn_id": params.get("warehouse_conn_id") or "",
        "shards": int(params.get("shards", 1)), "tolerance": float(params["tolerance"]),
        "wabas": list(params.get("wabas") or []),
        "dispute_id": None, "dispute_users": [], "dispute_phone_number_ids": [],
    }


def plan_dispute(params: dict, context) -> dict:
    """The plan of a dispute rerun: whole accounts, outputs and warehouse slice scoped to the dispute."""
    dispute_id = params["dispute_id"]
    plan = plan_monthly({**params, "report_prefix": "", "shards": 1}, context)
    plan["out"] = params["output_prefix"].format(dispute_id=dispute_id, period=plan["period"].replace("..", "_"))
    plan["dispute_id"] = dispute_id
    plan["dispute_users"] = [u.lstrip("+") for u in params.get("user_numbers") or []]
    plan["dispute_phone_number_ids"] = list(params.get("phone_number_ids") or [])
    return plan


def run_config(plan: dict, *, messages: list[str] | None = None, endpoint_url: str | None = None,
               warehouse: str | None = None):
    """The :class:`reconcile.pipeline.RunConfig` of a plan (``messages`` = listed objects, if known)."""
    from reconcile.contracts import Period
    from reconcile.pipeline import RunConfig

    return RunConfig(
        messages=list(messages or plan["messages"]), accounts=plan["accounts"], rate_cards=list(plan["rate_cards"]),
        invoices=list(plan["invoices"]), period=Period.parse(plan["period"]), market_map=plan["market_map"],
        wabas=list(plan["wabas"]), out=plan["out"], warehouse=warehouse or "none", tolerance=plan["tolerance"],
        s3_endpoint_url=endpoint_url, dispute_id=plan["dispute_id"], dispute_users=list(plan["dispute_users"]),
        dispute_phone_number_ids=list(plan["dispute_phone_number_ids"]),
    )


# --------------------------------------------------------------------------- connections
_AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL_S3")


@contextmanager
def aws_environment(conn_id: str) -> Iterator[str | None]:
    """Make the AWS connection ``conn_id`` the credentials of boto3 for the duration of the block
    (standard ``AWS_*`` environment variables, restored afterwards); yields the S3 endpoint URL
    (the connection extra ``endpoint_url``, e.g. ``http://minio:9000``) or ``None`` for AWS."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=conn_id, client_type="s3")
    credentials = hook.get_credentials()
    endpoint = hook.conn_config.get_service_endpoint_url("s3")
    values = {
        "AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_SESSION_TOKEN": credentials.token, "AWS_DEFAULT_REGION": hook.conn_config.region_name or "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    try:
        for k, v in values.items():
            if v:
                os.environ[k] = v
            else:
                os.environ.pop(k, None)
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def list_objects(plan: dict, key: str) -> list[str]:
    """Every object under the plan's prefixes ``plan[key]`` (e.g. the message logs of the period and its
    lookback), listed with the plan's S3 connection."""
    from reconcile.io import locations

    with aws_environment(plan["aws_conn_id"]) as endpoint:
        locations.set_default_endpoint(endpoint)
        return [f for prefix in plan[key] for f in locations.list_files(prefix)]


def warehouse_url(conn_id: str) -> str | None:
    """SQLAlchemy URL of the warehouse connection (``postgresql+psycopg://…``); the connection's
    ``schema`` field is the database, an extra ``search_path`` selects the Postgres schema."""
    if not conn_id:
        return None
    from airflow.sdk import BaseHook
    from sqlalchemy.engine import URL

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson or {}
    query = {"options": f"-csearch_path={extra['search_path']}"} if extra.get("search_path") else {}
    url = URL.create("postgresql+psycopg", username=conn.login or None, password=conn.password or None,
                     host=conn.host or None, port=conn.port or None, database=conn.schema or None, query=query)
    return url.render_as_string(hide_password=False)

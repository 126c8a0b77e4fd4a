#!/bin/sh
# minio-init: create the bucket and upload the demo inputs written by the `demo-inputs` service
# (reconcile.demo.write_demo_inputs) under /demo/inputs:
#   messages/<YYYY-MM>/..., invoices/<YYYY-MM>/..., reference/accounts.csv, reference/rate_cards/...
set -eu
mc alias set local "http://minio:9000" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/${RECONCILE_BUCKET}"
mc mirror --overwrite /demo/inputs "local/${RECONCILE_BUCKET}"
mc ls --recursive "local/${RECONCILE_BUCKET}"

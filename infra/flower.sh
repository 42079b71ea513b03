#!/bin/sh
# Flower, the Celery monitor, never without authentication.
set -eu
if [ -z "${FLOWER_USER:-}" ] || [ -z "${FLOWER_PASSWORD:-}" ]; then
  echo "flower: set FLOWER_USER and FLOWER_PASSWORD (in .env, see infra/env.example):" \
       "the monitor is not served without authentication" >&2
  exit 64
fi
exec celery -A workers.pipeline.celery_app flower \
  --address="${FLOWER_ADDRESS:-0.0.0.0}" --port="${FLOWER_PORT:-5555}" \
  --basic-auth="${FLOWER_USER}:${FLOWER_PASSWORD}" \
  --persistent=True --db="${FLOWER_DB:-/flower/flower.db}" --max_tasks=100000 \
  --purge_offline_workers=600

#!/bin/sh
# Flower, the Celery monitor, never without authentication: `tiktok-tracker flower`
# refuses to start unless FLOWER_USER and FLOWER_PASSWORD are set, and asks for them on
# every page (/metrics and /healthcheck too). It listens on FLOWER_ADDRESS (default
# 127.0.0.1; docker-compose.yml sets 0.0.0.0 inside the container and publishes the port
# on the host's 127.0.0.1) and keeps its state in FLOWER_DB (default DATA_DIR/flower/flower.db).
exec tiktok-tracker flower "$@"

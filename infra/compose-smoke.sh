#!/usr/bin/env bash
# Start the whole compose stack and run the seed videos through it: the smoke test of
# docker-compose.yml and the images (`make compose-smoke`; docs/pipeline.md, "With Docker
# Compose"). Needs root (it may install docker.io, docker-compose and debootstrap and
# start dockerd) and ../shared/data/seed (TT_SEED_DIR).
#
# Works where neither Docker Hub nor the package index can be reached from containers:
#   - base image tt-base:bookworm from Debian packages (debootstrap + docker import; kept),
#     and tt-postgres:bookworm from it (infra/local-base/);
#   - the project installed from wheels built on the host (infra/wheelhouse.sh; kept).
#   - tt-prometheus:bookworm from it and the host's Debian prometheus binary (kept).
# Then: build the image, start redis, postgres, the io/cpu/score workers, beat, flower, web,
# the metrics exporter and Prometheus (the `monitoring` profile; and s3 with --s3), enrol a
# face target from seed photos, enqueue Trump.mp4 and Biden.mp4, wait for both to be done,
# check the verdicts (Trump positive, Biden negative), that Flower answers 401 without the
# password and 200 with it, and that Prometheus scraped the exporter (the two videos done,
# its rules loaded); print the timings and tear everything down (volumes too; images stay
# for the next run), on failure as well.
#
#   infra/compose-smoke.sh [--s3] [--official] [--keep] [--timeout SECONDS]
#     --s3        media in S3: a local moto server (compose profile s3), TT_MEDIA_URL and
#                 credentials for every service, the target pushed to the store.
#     --official  the official images (python, redis, postgres) and the package index,
#                 for hosts that reach them: no debootstrap, no wheelhouse.
#     --keep      leave the stack running (tear down later: see the last line printed).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seed=${TT_SEED_DIR:-$root/../shared/data/seed}
work=${TT_SMOKE_DIR:-/var/tmp/tt-smoke}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
project=tt-smoke
base_image=tt-base:bookworm
postgres_image=tt-postgres:bookworm
prometheus_image=tt-prometheus:bookworm
use_s3=0 official=0 keep=0 timeout=900
while [ $# -gt 0 ]; do
  case "$1" in
    --s3) use_s3=1 ;;
    --official) official=1 ;;
    --keep) keep=1 ;;
    --timeout) timeout=$2; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "compose-smoke: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# The Trump face target: five seed photos (tests/test_face.py), README's tolerance 0.5.
trump_photos=(frame72.jpg frame588.jpg frame324.jpg frame33.jpg frame601.jpg)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[smoke %6ss] %s\n' "$(since "$t_start")" "$*"; }
die() { say "FAILED: $*"; exit 1; }
apt_install() {
  say "apt-get install $*"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
t_start=$(now)
mkdir -p "$work"
[ -f "$seed/Trump.mp4" ] && [ -f "$seed/Biden.mp4" ] || die "no seed videos in $seed (set TT_SEED_DIR)"

# --- the engine and compose ---------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || apt_install docker.io
  say "no Docker engine answers: starting dockerd (log: $work/dockerd.log; it keeps running)"
  setsid nohup dockerd >"$work/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not start (see $work/dockerd.log)"
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose -p "$project" -f "$root/docker-compose.yml") compose_tool="docker compose"
else
  command -v docker-compose >/dev/null || apt_install docker-compose
  # Compose v1 (Debian's docker-compose 1.29) refuses the top-level `name:`; -p names the project.
  grep -v '^name:' "$root/docker-compose.yml" >"$work/docker-compose.yml"
  compose=(docker-compose -p "$project" -f "$work/docker-compose.yml" --project-directory "$root") compose_tool=docker-compose
fi
say "engine: Docker $(docker version -f '{{.Server.Version}}'); compose: $("${compose[@]}" version --short 2>/dev/null || echo '?') ($compose_tool)"

# --- images from local parts -----------------------------------------------------------------
t_base=$(now)
if [ "$official" = 0 ]; then
  if docker image inspect "$base_image" >/dev/null 2>&1; then
    say "base image $base_image: exists (docker rmi it to rebuild)"
  else
    command -v debootstrap >/dev/null || apt_install debootstrap
    rootfs=$work/rootfs
    rm -rf "$rootfs"
    say "base image $base_image: debootstrap bookworm from $mirror"
    debootstrap --variant=minbase --include=python3,python3-venv,libgomp1,passwd,redis-server,postgresql \
      bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || die "debootstrap failed (see $work/debootstrap.log)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$base_image" >/dev/null
    rm -rf "$rootfs"
  fi
  docker build -q -f "$root/infra/local-base/Dockerfile.postgres" --build-arg BASE_IMAGE="$base_image" \
    -t "$postgres_image" "$root/infra/local-base" >"$work/postgres-build.log" 2>&1 || die "tt-postgres build failed (see $work/postgres-build.log)"
  if ! docker image inspect "$prometheus_image" >/dev/null 2>&1; then
    command -v prometheus >/dev/null || apt_install prometheus
    mkdir -p "$work/prometheus-image" && cp "$(command -v prometheus)" "$work/prometheus-image/"
    docker build -q -f "$root/infra/local-base/Dockerfile.prometheus" --build-arg BASE_IMAGE="$base_image" \
      -t "$prometheus_image" "$work/prometheus-image" >"$work/prometheus-build.log" 2>&1 || die "tt-prometheus build failed (see $work/prometheus-build.log)"
  fi
  say "base images ready in $(since "$t_base") s"
  t_wheels=$(now)
  image_python=$(docker run --rm "$base_image" python3 -c 'import sys; print("python%d.%d" % sys.version_info[:2])')
  PYTHON=${PYTHON:-$image_python} "$root/infra/wheelhouse.sh" || die "wheelhouse failed"
  say "wheelhouse ready in $(since "$t_wheels") s"
  export TT_BASE_IMAGE=$base_image TT_PIP_OFFLINE=1 TT_REDIS_IMAGE=$base_image TT_POSTGRES_IMAGE=$postgres_image
  export TT_PROMETHEUS_IMAGE=$prometheus_image
fi
base_s=$(since "$t_base")

# --- the stack's settings (shell variables win over any .env) ---------------------------------
secret() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
run=$work/run
rm -rf "$run" && mkdir -p "$run/models"
chown 1000:1000 "$run/models"   # the images' user (tracker, uid 1000) enrols the target
export TT_MODELS_HOST_DIR=$run/models
export POSTGRES_PASSWORD=$(secret) REDIS_PASSWORD=$(secret)
export FLOWER_USER=smoke FLOWER_PASSWORD=$(secret) TT_WEB_PASSWORD=$(secret) TT_WEB_SECRET=$(secret)
export TT_BIND_ADDRESS=127.0.0.1 FLOWER_BIND_ADDRESS=127.0.0.1 WEB_BIND_ADDRESS=127.0.0.1
# Ports beside a Redis, Postgres or Flower that the host may run itself.
export TT_REDIS_HOST_PORT=${TT_REDIS_HOST_PORT:-16379} TT_POSTGRES_HOST_PORT=${TT_POSTGRES_HOST_PORT:-15432}
export FLOWER_HOST_PORT=${FLOWER_HOST_PORT:-15555} WEB_HOST_PORT=${WEB_HOST_PORT:-18080}
export METRICS_HOST_PORT=${METRICS_HOST_PORT:-19808} PROMETHEUS_HOST_PORT=${PROMETHEUS_HOST_PORT:-19090} TT_METRICS_PASSWORD=$(secret)
export COMPOSE_PROFILES=monitoring
if [ "$use_s3" = 1 ]; then
  export COMPOSE_PROFILES=monitoring,s3 TT_EXTRA_REQUIREMENTS='moto[server]'
  export TT_MEDIA_URL=s3://tiktok-tracker/media TT_S3_ENDPOINT_URL=http://s3:5000
  export AWS_ACCESS_KEY_ID=smoke AWS_SECRET_ACCESS_KEY=$(secret)
  say "media store: S3 (moto server in the s3 service, $TT_MEDIA_URL)"
else
  say "media store: the shared media volume"
fi

teardown() {
  status=$?
  if [ "$status" != 0 ]; then
    say "last log lines of every service:"
    "${compose[@]}" logs --no-color --tail 30 2>&1 | sed 's/^/    /' || true
  fi
  if [ "$keep" = 1 ]; then
    say "stack left running; tear down with: ${compose[*]} down -v --remove-orphans"
  else
    t_down=$(now)
    "${compose[@]}" down -v --remove-orphans >"$work/down.log" 2>&1 || say "teardown failed (see $work/down.log)"
    say "torn down in $(since "$t_down") s (containers, network, volumes; images kept)"
  fi
  [ "$status" = 0 ] && say "PASSED in $(since "$t_start") s" || say "FAILED (exit $status)"
}
# A one-off command in a service's container (compose's "Creating ..." lines left out).
one_off() { "${compose[@]}" run --rm --no-deps "$@" 2> >(grep -v '^Creating .*_run' >&2); }
trap teardown EXIT
trap 'exit 130' INT TERM
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true   # what an interrupted run left

# --- build and start ------------------------------------------------------------------------
t_build=$(now)
say "building tiktok-tracker:cpu (log: $work/build.log)"
"${compose[@]}" build worker-io >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log"; die "image build failed"; }
build_s=$(since "$t_build")
say "image built in $build_s s"

t_up=$(now)
if [ "$use_s3" = 1 ]; then
  "${compose[@]}" up -d s3 >>"$work/up.log" 2>&1 || die "s3 service did not start"
  for _ in $(seq 60); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q s3)")" = healthy ] && break; sleep 1
  done
  one_off worker-io python3 -c \
    "import boto3; boto3.client('s3', endpoint_url='$TT_S3_ENDPOINT_URL', region_name='us-east-1').create_bucket(Bucket='tiktok-tracker')" \
    || die "could not create the bucket"
fi
"${compose[@]}" up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log"; die "compose up failed"; }
up_s=$(since "$t_up")
say "compose up returned after $up_s s: $("${compose[@]}" ps --services --filter status=running 2>/dev/null | sort | tr '\n' ' ')"

flower=http://127.0.0.1:$FLOWER_HOST_PORT
http_code() { curl -s -o /dev/null -m 10 -w '%{http_code}' "$@" || true; }
for _ in $(seq 120); do [ "$(http_code "$flower/")" = 401 ] && break; sleep 1; done
code_anon=$(http_code "$flower/")
code_auth=$(http_code -u "$FLOWER_USER:$FLOWER_PASSWORD" "$flower/")
say "flower: $code_anon without the password, $code_auth with it"
[ "$code_anon" = 401 ] || die "flower answered $code_anon without the password (401 expected)"
[ "$code_auth" = 200 ] || die "flower answered $code_auth with the password (200 expected)"
# Ready: Flower sees one worker of each queue (node names: QUEUE@HOST).
workers="" ready=0
for _ in $(seq 90); do
  workers=$(curl -s -m 15 -u "$FLOWER_USER:$FLOWER_PASSWORD" "$flower/api/workers?refresh=1" \
    | python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin))))' 2>/dev/null || true)
  ready=1
  for queue in io cpu score; do case " $workers" in *" $queue@"*) ;; *) ready=0 ;; esac; done
  [ "$ready" = 1 ] && break
  sleep 2
done
[ "$ready" = 1 ] || die "flower does not list an io, a cpu and a score worker: '$workers'"
start_s=$(since "$t_up")
say "stack ready in $start_s s (workers: $workers)"
code_web=$(http_code "http://127.0.0.1:$WEB_HOST_PORT/pipeline")
say "web: $code_web for an anonymous request (a redirect to its login page)"
[ "$code_web" = 303 ] || die "the web app answered $code_web to an anonymous request (303 to /login expected)"

# --- a target, the seed videos, the verdicts ---------------------------------------------------
t_target=$(now)
photos=()
for p in "${trump_photos[@]}"; do photos+=("/seed-images/$p"); done
one_off -e TT_MODELS_DIR=/models-rw -v "$run/models:/models-rw" -v "$seed/images:/seed-images:ro" \
  worker-io tiktok-tracker target add-face trump "${photos[@]}" || die "could not enrol the face target"
if [ "$use_s3" = 1 ]; then
  one_off -e TT_MODELS_DIR=/models-rw -v "$run/models:/models-rw" \
    worker-io tiktok-tracker target push trump || die "could not push the target to the store"
fi
say "target trump enrolled in $(since "$t_target") s"

# The io worker must read the files: copy them into the media volume first.
t_enqueue=$(now)
one_off -v "$seed:/seed:ro" worker-io sh -c \
  'mkdir -p /data/incoming && cp /seed/Trump.mp4 /seed/Biden.mp4 /data/incoming/ &&
   tiktok-tracker enqueue /data/incoming/Trump.mp4 /data/incoming/Biden.mp4 --target trump --json' >"$run/jobs.json" \
  || die "enqueue failed"
enqueue_s=$(since "$t_enqueue") t_queued=$(now)
job_of() { python3 -c 'import json, sys; print(next(j["job_id"] for j in map(json.loads, open(sys.argv[1])) if j["source"].endswith(sys.argv[2])))' "$run/jobs.json" "$1"; }
trump_job=$(job_of Trump.mp4) biden_job=$(job_of Biden.mp4)
say "enqueued in $enqueue_s s: Trump.mp4 job $trump_job, Biden.mp4 job $biden_job"

declare -A ended=() seconds=()
deadline=$(( $(date +%s) + timeout ))
while [ "${#ended[@]}" -lt 2 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "videos not done after $timeout s"
  states=$("${compose[@]}" exec -T worker-io tiktok-tracker status --json --limit 10 2>/dev/null \
    | python3 -c 'import json, sys; print("\n".join("%s %s" % (v["job_id"], v["status"]) for v in json.load(sys.stdin)["videos"]))' 2>/dev/null || true)
  for job in "$trump_job" "$biden_job"; do
    [ -z "${ended[$job]:-}" ] || continue
    state=$(awk -v j="$job" '$1 == j { print $2 }' <<<"$states")
    case "$state" in
      done|failed) ended[$job]=$state; seconds[$job]=$(since "$t_queued"); say "job $job: $state after ${seconds[$job]} s" ;;
    esac
  done
  sleep 2
done

verdict_of() {
  "${compose[@]}" exec -T worker-io tiktok-tracker status "$1" --json \
    | python3 -c 'import json, sys; v = json.load(sys.stdin); print(v["status"], *("%s=%s(%s/%s)" % (d["target"], d["verdict"], d["positive_frames"], d["frames"]) for d in v["detections"]), v["error"] or "")'
}
trump=$(verdict_of "$trump_job") biden=$(verdict_of "$biden_job")
say "Trump.mp4: $trump"
say "Biden.mp4: $biden"
case "$trump" in "done trump=positive"*) ;; *) die "Trump.mp4 should be done with trump=positive" ;; esac
case "$biden" in "done trump=negative"*) ;; *) die "Biden.mp4 should be done with trump=negative" ;; esac

# --- Prometheus scraped the exporter --------------------------------------------------------
prom=http://127.0.0.1:$PROMETHEUS_HOST_PORT
prom_value() {
  curl -s -m 10 --get "$prom/api/v1/query" --data-urlencode "query=$1" \
    | python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
scraped=""
for _ in $(seq 60); do
  scraped=$(prom_value 'tt_videos{status="done"}')
  [ "$scraped" = 2 ] && [ "$(prom_value 'up{job="tiktok-tracker"}')" = 1 ] && break
  sleep 2
done
rules=$(curl -s -m 10 "$prom/api/v1/rules" | python3 -c 'import json, sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))' 2>/dev/null || true)
say "prometheus: tt_videos{status=done} = ${scraped:-none}, up = $(prom_value 'up{job="tiktok-tracker"}'), $rules alerting rules loaded"
[ "$scraped" = 2 ] || die "Prometheus did not scrape the two videos done from the exporter"
[ "${rules:-0}" -gt 0 ] || die "Prometheus loaded no alerting rules"
code_metrics=$(http_code "http://127.0.0.1:$METRICS_HOST_PORT/metrics")
say "metrics: $code_metrics without the password"
[ "$code_metrics" = 401 ] || die "the exporter answered $code_metrics without the password (401 expected)"

say "timings: base images + wheelhouse ${base_s} s, image build ${build_s} s, start ${start_s} s (compose up ${up_s} s)," \
  "enqueue ${enqueue_s} s, verdicts after being queued: Trump.mp4 ${seconds[$trump_job]} s, Biden.mp4 ${seconds[$biden_job]} s"

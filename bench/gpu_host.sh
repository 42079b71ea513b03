#!/usr/bin/env bash
# On the GPU host, from the repo root, one command, at most 10 minutes:
#     bash bench/gpu_host.sh [VIDEO...]
# The score stage on Keras/JAX (bfloat16 and float32, batches 32-512, 8 videos a batch)
# and hardware video decoding against CPU decoding (bench/gpu_score.py); every part that
# cannot run there prints "not available (why)". Nothing is installed and nothing is fetched.
# Videos: the arguments, else $GPU_VIDEOS (a folder), else the seed videos where a copy is
# (shared/data/seed, ../shared/data/seed, gpu-videos/ — an untracked folder travels with the
# working tree: `mkdir gpu-videos && cp ../shared/data/seed/*.mp4 gpu-videos/`).
# GPU_BUDGET (seconds, default 540) bounds the Python part; the whole script is killed at 590 s.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
export KERAS_BACKEND=${KERAS_BACKEND:-jax} TF_CPP_MIN_LOG_LEVEL=3 XLA_PYTHON_CLIENT_PREALLOCATE=false
videos=("$@")
if [ ${#videos[@]} -eq 0 ]; then
  for dir in "${GPU_VIDEOS:-}" gpu-videos shared/data/seed ../shared/data/seed; do
    [ -n "$dir" ] && [ -d "$dir" ] || continue
    for v in "$dir"/*.mp4; do [ -f "$v" ] && videos+=("$v"); done
    [ ${#videos[@]} -gt 0 ] && break
  done
fi
echo "== host"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -4 || echo "nvidia-smi: not available"
nproc
"$PY" - <<'PY'
import importlib
for name in ("jax", "keras", "torch", "av", "torchcodec", "PyNvVideoCodec", "cv2", "pydantic_settings"):
    try:
        m = importlib.import_module(name)
        print(f"  {name:<18} {getattr(m, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"  {name:<18} not available ({type(exc).__name__})")
try:
    import jax
    print("  jax devices:", jax.devices())
except Exception as exc:  # noqa: BLE001
    print("  jax devices: not available", exc)
PY
echo "== videos: ${videos[*]:-none}"
exec timeout 590 "$PY" bench/gpu_score.py --budget "${GPU_BUDGET:-540}" --batches 32,64,128,256,512 \
  --precisions bfloat16,float32 --videos-per-batch 8 --seconds 15 --decode "${videos[@]}"

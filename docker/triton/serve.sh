#!/bin/sh
# Start Triton in the stagelog-triton container: `serve.sh [tritonserver flags...]`.
#
# With STAGELOG_DEVICE=gpu (the compose default) the members (mlp, forest, logreg) get KIND_GPU
# instance groups on every GPU the container sees: logging_backend.stack.gpu_repository writes that
# variant of the mounted repository (/models, committed CPU-only) into
# STAGELOG_GPU_REPOSITORY_DIR and Triton serves it. No GPU visible: the committed repository is
# served and the members log their CPU fallback. STAGELOG_TRITON_GPUS=0,1 overrides detection.
set -eu

PYTHON="${PYTHON:-python3}"
SRC="${STAGELOG_MODEL_REPOSITORY:-/models}"
GPU_REPO="${STAGELOG_GPU_REPOSITORY_DIR:-/tmp/model_repository_gpu}"
repo="$SRC"

if [ "${STAGELOG_DEVICE:-auto}" != "cpu" ]; then
    gpus="${STAGELOG_TRITON_GPUS:-}"
    if [ -z "$gpus" ]; then
        gpus="$("$PYTHON" -c 'import cupy; print(",".join(map(str, range(cupy.cuda.runtime.getDeviceCount()))))' 2>/dev/null || true)"
    fi
    if [ -n "$gpus" ]; then
        "$PYTHON" -c 'import sys
from logging_backend.stack.gpu_repository import write_gpu_repository
write_gpu_repository(sys.argv[1], sys.argv[2], gpus=[int(g) for g in sys.argv[3].split(",")])' \
            "$SRC" "$GPU_REPO" "$gpus"
        repo="$GPU_REPO"
        echo "serve.sh: members on GPU(s) $gpus: serving $repo" >&2
    else
        echo "serve.sh: STAGELOG_DEVICE=${STAGELOG_DEVICE:-auto} but no GPU is visible:" \
             "serving $SRC with CPU members" >&2
    fi
fi

exec tritonserver --model-repository="$repo" "$@"

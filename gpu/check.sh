#!/usr/bin/env bash
# The GPU check, for the H100 machine (no package registry there). Run from the repository root
# with .whl/ (made here by gpu/prepare.sh) carried along:
#
#   bash gpu/check.sh            # writes into $OUT (the device tool's output folder)
#   bash gpu/check.sh --cpu      # dry run on a machine without a GPU (see docs/gpu.md)
#
# Extra arguments go to gpu/check.py. Variables: OUT (output folder, default ./gpu-out),
# WHL (carried folder, default .whl), PY (python, default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
WHL=${WHL:-.whl}
PY=${PY:-python3}
T=/tmp/stagelog-gpu
mkdir -p "$OUT" "$T"
exec > >(tee "$OUT/check.log") 2>&1
started=$(date +%s)
say() { echo "[check.sh +$(( $(date +%s) - started ))s] $*"; }

say "host $(hostname), $(uname -m), $($PY -V 2>&1) at $(command -v $PY)"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed (no GPU?)" >> "$OUT/nvidia-smi.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2

# 1. wheels the machine lacks (tritonclient, python-rapidjson) into /tmp/site
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$T/site" "$WHL"/*.whl || { say "pip install of $WHL/*.whl failed"; exit 1; }
export PYTHONPATH="$T/site${PYTHONPATH:+:$PYTHONPATH}"
if ! $PY -c "import tritonclient.grpc" 2>/dev/null; then
  say "tritonclient.grpc does not import with the machine's protobuf: adding the carried one"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$T/site" "$WHL"/extra/protobuf-*.whl || exit 1
  $PY -c "import tritonclient.grpc" || exit 1
fi
$PY - <<'EOF'
import importlib
for name in ("numpy", "pyarrow", "cupy", "pynvml", "psutil", "grpc", "google.protobuf",
             "tritonclient", "typer"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as exc:
        print(f"  {name} NOT importable: {type(exc).__name__}: {exc}")
EOF

# 2. tritonserver 2.51 + Python backend + stub, and NumPy 1.26 + pyarrow 23 for string stubs
rm -rf "$T/pt" "$T/np1" && mkdir -p "$T/pt" "$T/np1"
untar() {  # Python's tarfile: no dependence on an xz binary on the machine
  $PY -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2" \
    || { say "cannot unpack $1"; exit 1; }
}
untar "$WHL/pytriton-slim.tar.xz" "$T/pt"
untar "$WHL/np1-site.tar.xz" "$T/np1"
say "unpacked tritonserver and the NumPy-1 site"
TS="$T/pt/pytriton/tritonserver"
pyver=$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
cp "$TS/python_backend_stubs/$pyver/triton_python_backend_stub" "$TS/backends/python/" \
  || { say "no stub for Python $pyver in the carried tritonserver"; exit 1; }
ln -sfn ../../nvidia_pytriton.libs "$TS/lib"  # the launcher puts <tritonserver>/lib on the path
export STAGELOG_TRITONSERVER="$TS/bin/tritonserver"
export STAGELOG_NP1_SITE="$T/np1" STAGELOG_NP2_MODELS=mlp,forest,logreg
# The stub ignores PYTHONPATH but processes .pth files: this one picks NumPy per stub.
sitepkg=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PTH="$sitepkg/zz_stagelog_numpy_split.pth"
printf '%s\nimport stagelog_numpy_split\n' "$PWD/gpu/stub_site" > "$PTH" \
  || { say "cannot write $PTH"; exit 1; }
trap 'rm -f "$PTH"' EXIT
libdir=$($PY -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
if ! ldconfig -p | grep -q "libpython$pyver.so.1.0" && [ ! -e "$libdir/libpython$pyver.so.1.0" ]; then
  if [ -f "$WHL/libpython$pyver.deb" ]; then
    say "no libpython$pyver.so.1.0 here: using the carried Ubuntu one"
    mkdir -p "$T/libpy" && dpkg -x "$WHL/libpython$pyver.deb" "$T/libpy"
    export LD_LIBRARY_PATH="$T/libpy/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    say "WARNING: no libpython$pyver.so.1.0 found; the stub will not start"
  fi
elif [ -n "$libdir" ]; then
  export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# tritonserver's CUDA runtime loads the driver's libcuda.so.1 by name
if ! ldconfig -p | grep -q 'libcuda.so.1 '; then
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    if [ -e "$d/libcuda.so.1" ]; then
      say "libcuda.so.1 found in $d (not in ldconfig): adding it to LD_LIBRARY_PATH"
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      break
    fi
  done
fi
ldconfig -p | grep -E "libcuda.so.1 |libnvidia-ml.so.1 " || true
ldd "$TS/backends/python/triton_python_backend_stub" | grep -E "not found|libpython" || true
say "set-up done"

# 3. the check itself (both phases, summary, spool tarballs)
PYTHONUNBUFFERED=1 $PY gpu/check.py --out "$OUT" "$@"
rc=$?
say "check.py exited with $rc; files in $OUT:"
ls -la "$OUT"
exit $rc

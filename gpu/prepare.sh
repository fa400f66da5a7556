#!/usr/bin/env bash
# Build .whl/ here (a machine with PyPI) for gpu/check.sh on the H100 machine (no registry).
#
# The device machine has Python 3.12, NumPy 2.x, CuPy, pyarrow, grpcio, protobuf, psutil,
# nvidia-ml-py, typer and rich (see docs/gpu.md). It lacks what this fills .whl/ with:
#   tritonclient + python-rapidjson     wheels, pip-installed into /tmp/site by check.sh
#   extra/protobuf-6.33.*.whl           installed only if tritonclient's gencode rejects theirs
#   pytriton-slim.tar.xz                tritonserver 2.51, the Python backend, the 3.12 stub and
#                                       the libraries they load, from nvidia-pytriton 0.7.0
#                                       (ICU's 30 MB data file replaced by an empty one: nothing
#                                       on our path converts text encodings)
#   np1-site.tar.xz                     NumPy 1.26.4 + pyarrow 23.0.1 (slim) for the stub processes
#                                       that handle string tensors: the 2.51 stub's pybind11
#                                       predates NumPy 2 and corrupts every array it builds under
#                                       NumPy 2 (docs/gpu.md, "Why two NumPys")
#   libpython3.12.deb                   Ubuntu 24.04's libpython3.12.so.1.0, used only when the
#                                       machine has none (the stub links it)
# and prints the total that travels (tracked files + untracked + .whl) against the 64 MiB limit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYVER=${PYVER:-3.12}  # 3.11 builds a rehearsal set for this machine (docs/gpu.md)
OUT=${WHL_DIR:-$ROOT/.whl}
PY=${PY:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d /tmp/stagelog-gpu-prepare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PLAT=(--no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp
      --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64)
download() { "$PY" -m pip download -q "${PLAT[@]}" -d "$1" "$2" 2>&1 | grep -v '^WARNING: Location' || true; }

rm -rf "$OUT" && mkdir -p "$OUT/extra"
download "$OUT" tritonclient==2.73.0
download "$OUT" python-rapidjson==1.25
download "$OUT/extra" protobuf==6.33.6

# --- tritonserver from the nvidia-pytriton wheel, slimmed -----------------------------------
download "$WORK/w" nvidia-pytriton==0.7.0
mkdir -p "$WORK/pt" && (cd "$WORK/pt" && unzip -q "$WORK"/w/nvidia_pytriton-*.whl \
  'pytriton/tritonserver/bin/*' 'pytriton/tritonserver/backends/python/*' \
  "pytriton/tritonserver/python_backend_stubs/$PYVER/*" 'nvidia_pytriton.libs/*')
rm -f "$WORK"/pt/nvidia_pytriton.libs/libpython3-*  # pytriton's own 3.13 runtime, unused
icu=$(cd "$WORK/pt/nvidia_pytriton.libs" && ls libicudata-*)
printf 'const unsigned char icudt70_dat[64] __attribute__((aligned(16))) = {0};\n' > "$WORK/icu.c"
gcc -shared -fPIC -Wl,-soname,"$icu" -o "$WORK/pt/nvidia_pytriton.libs/$icu" "$WORK/icu.c"
strip --strip-unneeded "$WORK"/pt/nvidia_pytriton.libs/libtritonserver-*.so
(cd "$WORK/pt" && tar -cf - pytriton nvidia_pytriton.libs | xz -T0 -6 > "$OUT/pytriton-slim.tar.xz")

# --- NumPy 1.26 + pyarrow 23 for the string-handling stubs ----------------------------------
download "$WORK/n" numpy==1.26.4
download "$WORK/n" pyarrow==23.0.1
mkdir -p "$WORK/np1" && for w in "$WORK"/n/*.whl; do unzip -q -o "$w" -d "$WORK/np1"; done
(cd "$WORK/np1" && find . -type d -name tests -prune -exec rm -rf {} + \
  && rm -rf numpy/f2py numpy/distutils numpy/_pyinstaller numpy/typing numpy/doc \
  && cd pyarrow && rm -rf include includes src tests \
  && rm -f ./*.pyx ./*.pxd ./*.pxi ./*.h libarrow_flight.so* libarrow_python_flight.so* \
     libarrow_python_parquet_encryption.so* _flight.* _azurefs.* _gcsfs.* _hdfs.* _s3fs.* _orc.* \
     _dataset_orc.* _parquet_encryption.* _dataset_parquet_encryption.* _pyarrow_cpp_tests.* \
     _substrait.* _cuda.* gandiva.* libarrow_python.so libarrow_python.so.2300.1.0)
(cd "$WORK/np1" && tar -cf - . | xz -T0 -6 > "$OUT/np1-site.tar.xz")

# --- libpython3.12 from Ubuntu 24.04 (noble-updates), through apt with a private list -------
if [ "$PYVER" = 3.12 ]; then
A="$WORK/apt"; mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/deb"
echo "deb [trusted=yes] http://archive.ubuntu.com/ubuntu noble-updates main" > "$A/sources.list"
O=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o APT::Architecture=amd64
   -o Acquire::AllowInsecureRepositories=true -o APT::Sandbox::User=root)
apt-get "${O[@]}" -qq update 2>/dev/null
(cd "$A/deb" && apt-get "${O[@]}" -qq download libpython3.12t64 2>/dev/null)
cp "$A"/deb/libpython3.12t64_*.deb "$OUT/libpython3.12.deb"
fi
sha256sum gpu/prepare.sh | cut -d" " -f1 > "$OUT/PREPARED_BY"

ls -la "$OUT" "$OUT/extra"
"$PY" gpu/size.py "$OUT"

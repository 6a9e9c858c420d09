#!/bin/sh
# Regenerates the checked-in test objects next to their sources.
# Needs clang-19 and the libbpf-dev / libxdp-dev headers; the tests do not
# run this script, they use the checked-in .o files.
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
CFLAGS="-O2 -target bpf -I/usr/include/$MULTIARCH -Wall -Wno-unused-variable"
for src in globals_calls maps_btf legacy_maps core_relocs bad_run_config; do
	$CLANG $CFLAGS -g -c "$src.c" -o "$src.o"
done
# The same legacy-map program without -g: no .BTF / .BTF.ext at all.
$CLANG $CFLAGS -c legacy_maps.c -o legacy_maps_nobtf.o

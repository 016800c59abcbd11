#!/bin/sh
# Builds cpp/tools/exhaustive_f32.cpp (or the tool TG_TOOL names, e.g.
# cpp/tools/pow_f32_sample.cpp) once per instruction set (the flags of
# cpp/CMakeLists.txt's loop files) and runs it with the arguments given.
set -e
G=${TG_GENERATED:-build/dev/core/generated}
S=${TG_TOOL:-cpp/tools/exhaustive_f32.cpp}
B=$(basename "$S" .cpp)
# (a directory of its own: several checkouts may run this at once)
O=$(mktemp -d "${TMPDIR:-/tmp}/tg_$B.XXXXXX")
F="-O3 -std=c++17 -ffp-contract=off -fno-trapping-math -fno-math-errno -Icpp/include -Icpp/src -I$G"
g++ $F -DTG_ISA=baseline -c $S -o "$O/b.o"
g++ $F -DTG_ISA=avx2 -mavx2 -mfma -c $S -o "$O/a2.o"
g++ $F -DTG_ISA=avx512 -mavx2 -mfma -mavx512f -mavx512dq -mavx512vl -mavx512bw -mprefer-vector-width=512 -c $S -o "$O/a5.o"
g++ $F -c $S -o "$O/m.o"
g++ "$O/b.o" "$O/a2.o" "$O/a5.o" "$O/m.o" -o "$O/$B" -lpthread
exec "$O/$B" "$@"

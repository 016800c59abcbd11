#!/bin/sh
# Builds cpp/tools/pow_f32_sample.cpp per instruction set and runs it
# (argument: the number of random pairs).
TG_TOOL=cpp/tools/pow_f32_sample.cpp exec sh "$(dirname "$0")/exhaustive_f32.sh" "$@"

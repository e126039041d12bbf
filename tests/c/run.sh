#!/bin/sh
# Runs C test binaries (tests/c/build.mk): run.sh CORPUS_DIR BINARY...
# A binary named fuzz_wire replays CORPUS_DIR. Prints each binary's output, then the sum
# "N passed, M failed"; exits 1 when anything failed.
corpus=$1
shift
passed=0
failed=0
log=$(mktemp)
for bin in "$@"; do
    echo "== $bin"
    case $bin in
    */fuzz_wire) "$bin" "$corpus" >"$log" 2>&1 ;;
    *) "$bin" >"$log" 2>&1 ;;
    esac
    rc=$?
    cat "$log"
    last=$(tail -n 1 "$log")
    p=$(echo "$last" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p')
    f=$(echo "$last" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then
        echo "$bin: exit status $rc without a summary line"
        p=0
        f=1
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$bin: exit status $rc"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

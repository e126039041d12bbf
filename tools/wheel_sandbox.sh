#!/bin/sh
# Runs a command in a private mount namespace where the given files and directories are
# hidden: /dev/null is bound over each file, an empty read-only tmpfs over each directory
# (symlinks are followed: hiding a library's real file hides every name of it). Used by
# `make wheel-test` (tests/check_wheel.py) to show that the wheel needs none of the
# system's copies of the libraries it bundles, nor libzmq's and OpenSSL's headers.
#
#   tools/wheel_sandbox.sh [--hide PATH]... -- COMMAND [ARG...]
#
# Needs root (unshare -m); the mounts vanish with the namespace, and what the command
# starts (a cluster's controller and engines) runs in the same namespace.
set -eu

if [ "${CPAR_SANDBOX_INSIDE:-}" != 1 ]; then
    CPAR_SANDBOX_INSIDE=1 exec unshare --mount --propagation private -- "$0" "$@"
fi
unset CPAR_SANDBOX_INSIDE

hide() {
    if [ ! -e "$1" ]; then
        echo "wheel_sandbox.sh: --hide $1: no such file or directory" >&2
        exit 2
    fi
    real=$(readlink -f -- "$1")
    if [ -d "$real" ]; then
        mount -t tmpfs -o ro,size=4k cpar-hidden "$real"
    else
        mount --bind /dev/null "$real"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
    --hide)
        [ $# -ge 2 ] || { echo "wheel_sandbox.sh: --hide needs a path" >&2; exit 2; }
        hide "$2"
        shift 2
        ;;
    --)
        shift
        break
        ;;
    *)
        echo "wheel_sandbox.sh: unknown argument $1 (usage: [--hide PATH]... -- COMMAND)" >&2
        exit 2
        ;;
    esac
done
[ $# -gt 0 ] || { echo "wheel_sandbox.sh: no command after --" >&2; exit 2; }
exec "$@"

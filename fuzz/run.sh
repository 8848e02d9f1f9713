#!/bin/sh
# Long fuzzing runs: fuzz/run.sh HARNESS SECONDS [more libFuzzer flags]
#
#   HARNESS   http_server, http_client, websocket, content_decoders, codecs, differential
#   SECONDS   wall-clock budget (-max_total_time); the run stops earlier at a crash
#
# The checked-in seeds in fuzz/corpus/HARNESS are read, never written: the inputs the
# run finds go to $FUZZ_WORK/HARNESS (default /tmp/sansnet-fuzz/HARNESS), which later
# runs pick up again. Crashes, timeouts and leaks go to fuzz/crashes/HARNESS/ (git-
# ignored): turn each into a case of tests/protocol/test_fuzz_regressions.py.
# $PYTHON is the interpreter with sansnet and its dev extra (default: python3).
# Reproduce one input: $PYTHON fuzz/HARNESS.py fuzz/crashes/HARNESS/crash-...
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 HARNESS SECONDS [libFuzzer flags]" >&2
    exit 2
fi
harness=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
if [ ! -f "$here/$harness.py" ] || [ ! -d "$here/corpus/$harness" ]; then
    echo "$0: no harness named $harness" >&2
    exit 2
fi
work=${FUZZ_WORK:-/tmp/sansnet-fuzz}/$harness
crashes=$here/crashes/$harness
mkdir -p "$work" "$crashes"
set -- -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$@"
case $harness in
    http_server | http_client | differential) set -- -dict="$here/http.dict" "$@" ;;
esac
exec "$python" "$here/$harness.py" "$@" "$work" "$here/corpus/$harness"

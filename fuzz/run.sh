#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each) on the
# stable toolchain. Crashes land in fuzz/artifacts/<target>/; turn each
# into a regression test (tests/integration/config_errors.rs or a unit
# test beside the parser) before fixing it. `cargo test` replays every
# corpus with mutations (src/fuzzing.rs) on each run.
#   usage: fuzz/run.sh [seconds-per-target] [target…]   (default: all)
#   FUZZ_DEV=1: an unoptimised build (minutes less to compile, fewer runs
#   per second): what .ci/run's short run of request_head uses.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config_load token_response path_policy basic_header sealed_entry credential_files trace_context request_head)
build=()
[ -z "${FUZZ_DEV:-}" ] || build=(--dev)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in "${targets[@]}"; do
    echo "== $target (${seconds}s)"
    # cargo-fuzz passes nightly-only flags; RUSTC_BOOTSTRAP lets the stable
    # compiler accept them. No sanitizer: the code under test is safe Rust.
    RUSTC_BOOTSTRAP=1 cargo fuzz run "${build[@]}" --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
done

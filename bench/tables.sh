#!/bin/sh
# The engine's before/after tables (BENCHMARKS.md, "Issue 15: before and
# after"): `fheserve bench` on each bundled workload and example in latency
# packing, one sample per call, CALLS calls (the table gives their median),
# with each key choice in KEYS, the choices interleaved per workload. One
# JSON file per run in OUT, and a Markdown table of all of them on stdout.
#
#   bench/tables.sh                        # every workload but prism-cifar
#   bench/tables.sh cnn fmnist-cnn         # some
#   KEYS=small CALLS=1 GOMEMLIMIT=10GiB bench/tables.sh prism-cifar
#   bench/tables.sh --table                # only the table of what OUT holds
#
# The examples need no test sets (fixture rows of examples/NAME); the
# heavy ones take minutes (fmnist-cnn) to an hour (prism-cifar) per run.
set -e
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/fheserve-tables}
KEYS=${KEYS:-fast small}
CALLS=${CALLS:-3}
export GOMEMLIMIT="${GOMEMLIMIT:-8GiB}"
mkdir -p "$OUT"

if [ "$1" != --table ]; then
	go build -o "$OUT/fheserve" ./cmd/fheserve
	if [ $# -eq 0 ]; then
		set -- logreg mlp cnn match cancer-logreg digits-mlp face-match fmnist-mlp fmnist-cnn fmnist-cnn-poly fmnist-resnet
	fi
	for w in "$@"; do
		for keys in $KEYS; do
			echo "$(date -u +%H:%M:%S) $w $keys (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
			nice -n 10 "$OUT/fheserve" bench --examples examples --workload "$w" --keys "$keys" \
				--modes latency --latency-calls "$CALLS" --json >"$OUT/$w.$keys.part"
			mv "$OUT/$w.$keys.part" "$OUT/$w.$keys.json"
		done
	done
fi

# Keys and sizes in MB and KB of 10^6 and 10^3 bytes; peak: the process's
# peak resident set over compile, keys and calls.
/usr/bin/python3 - "$OUT" <<'PY'
import glob, json, os, sys
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    if os.path.getsize(f) == 0:
        continue
    with open(f) as fh:
        rows += json.load(fh)
print("| workload | keys | ring | rotation keys, rotations per call | eval keys MB | upload KB | result KB"
      " | keygen ms | evaluate ms (median of calls) | CPU ms per call | peak MB | max error (stated) | privacy bits |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['workload']} | {r['keys']} | 2^{r['log_n']} | {r['rotation_keys']}, {r['rotations_per_call']}"
          f" | {r['eval_key_bytes'] / 1e6:,.1f} | {r['upload_bytes'] / 1e3:,.0f} | {r['result_bytes'] / 1e3:,.0f}"
          f" | {r['keygen_ms']:,.0f} | {r['evaluate_median_ms']:,.0f} ({r['calls']} calls) | {r.get('call_cpu_median_ms', 0):,.0f}"
          f" | {r['peak_rss_bytes'] / 1e6:,.0f}"
          f" | {r['max_abs_error']:.2g} ({r['stated_error']:.2g}) | {r['privacy_bits']:.1f} |")
PY

#!/usr/bin/env python3
"""Groups a fixed-rate run's slow requests into stalls.

usage: benches/load/tail_clusters.py TIMES_DIR [SLOW_US]

Reads the `start_us latency_us` files `compare.sh` writes with TIMES_DIR
(one per system and round). A request is slow above SLOW_US (default
2000). Slow requests whose spans overlap are one stall: many connections
delayed together point at a pause of the whole process or machine (a
scheduler, a timer, the allocator giving memory back), one request alone
at that request's own work. Prints, per system and round: requests, slow
requests, stalls, the largest stall's size and length, and the median
gap between stalls (a periodic task shows as a steady gap).
"""
import os
import statistics
import sys


def stalls(samples, slow_us):
    """Merged [start, end, count] spans of the slow requests."""
    spans = sorted((s, s + l) for s, l in samples if l > slow_us)
    merged = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] += 1
        else:
            merged.append([start, end, 1])
    return merged


def main():
    directory = sys.argv[1]
    slow_us = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    print(f"slow: above {slow_us} us")
    print(f"{'file':<28} {'requests':>8} {'slow':>6} {'stalls':>6} {'biggest':>8} {'longest ms':>10} {'median gap ms':>13}")
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            samples = [tuple(map(int, line.split())) for line in f if line.strip()]
        found = stalls(samples, slow_us)
        slow = sum(c for _, _, c in found)
        biggest = max((c for _, _, c in found), default=0)
        longest = max(((e - s) / 1000 for s, e, _ in found), default=0)
        gaps = [(b[0] - a[0]) / 1000 for a, b in zip(found, found[1:])]
        gap = f"{statistics.median(gaps):.0f}" if gaps else "-"
        print(f"{name:<28} {len(samples):>8} {slow:>6} {len(found):>6} {biggest:>8} {longest:>10.1f} {gap:>13}")


if __name__ == "__main__":
    main()

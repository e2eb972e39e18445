#!/usr/bin/python3
"""Counts the callers in gdb's output of malloc_callers.sh: one line per distinct call chain (thread, then
the first frames above the allocator, template arguments and parameters elided), most frequent first.

usage: malloc_callers.py GDB_OUTPUT [FRAMES (default 5)]
"""
import collections
import re
import sys


def simplify(frame):
    """A frame's function without template arguments and parameter lists."""
    out, depth = [], 0
    for ch in frame:
        if ch in "<(":
            if depth == 0:
                out.append(ch + "…")
            depth += 1
        elif ch in ">)":
            depth -= 1
            if depth == 0:
                out.append(ch)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def main():
    text = open(sys.argv[1], errors="replace").read()
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    counts = collections.Counter()
    hits = 0
    for block in re.split(r"\n(?=Thread \d+ .* hit Breakpoint)", text):
        m = re.match(r"Thread (\d+)", block)
        if not m:
            continue
        hits += 1
        frames = re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(.*?)(?: \(\)| from .*| at .*)?$", block, re.M)
        frames = [simplify(f) for f in frames]
        frames = [f for f in frames if not re.search(r"malloc|operator new|^realloc|calloc", f)]
        counts[f"thread {m.group(1)} | " + " <- ".join(frames[:depth])] += 1
    print(f"{hits} allocations")
    for chain, n in counts.most_common(30):
        print(f"{n:6d} {chain[:400]}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Per-function instructions per request of a callgrind profile over another (the bare service):
`python3 scripts/profile_diff.py CASE.out BARE.out REQUESTS`. Self cost, by function."""
import collections, re, subprocess, sys

def load(path):
    out = subprocess.run(['callgrind_annotate', '--inclusive=no', '--threshold=100', path],
                         capture_output=True, text=True).stdout
    d = collections.Counter()
    for line in out.split('\n'):
        m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)', line)
        if m and 'PROGRAM TOTALS' not in line:
            d[re.sub(r' \[.*\]$', '', m.group(2))] += int(m.group(1).replace(',', ''))
    return d

case, bare, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
diff = {k: (case[k] - bare.get(k, 0)) / n for k in set(case) | set(bare)}
for k, v in sorted(diff.items(), key=lambda x: -abs(x[1]))[:int(sys.argv[4]) if len(sys.argv) > 4 else 30]:
    if abs(v) >= 1:
        print(f"{v:8.1f}  {k[:140]}")
print(f"{sum(diff.values()):8.1f}  total")

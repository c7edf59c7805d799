#!/usr/bin/env python3
"""Approximate top-level module cycles from the source text (complements cargo-modules, whose
"uses" edges miss paths written inside function bodies, e.g. `crate::response::policy_value(..)`
in src/plan.rs). Every `crate::a::...` path and every `use crate::{a::.., b}` group outside `//`
comments counts as a use of top-level module `a` by the file's top-level module; `#[cfg(test)]`
code is NOT excluded. Prints strongly connected components with more than one module."""
import os, re, sys, collections
src = sys.argv[1]
g = collections.defaultdict(lambda: collections.defaultdict(list))
def top_of(path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep)[0]
    return 'crate' if first in ('lib.rs',) else first[:-3] if first.endswith('.rs') else first
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith('.rs'): continue
        p = os.path.join(root, f); me = top_of(p)
        text = open(p).read()
        text = re.sub(r'//[^\n]*', '', text)          # comments and doc comments
        text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # string literals
        targets = set(re.findall(r'\bcrate::(\w+)', text))
        for grp in re.findall(r'\bcrate::\{([^;]*?)\};', text, re.S):
            # top-level names in the group: at brace depth 0
            depth, cur, names = 0, '', []
            for ch in grp:
                if ch == '{': depth += 1
                elif ch == '}': depth -= 1
                elif ch == ',' and depth == 0: names.append(cur); cur = ''; continue
                if depth == 0 and ch not in '{}': cur += ch
                elif depth > 0 and ch == '{' and depth == 1: pass
            names.append(cur)
            for n in names:
                m = re.match(r'\s*(\w+)', n)
                if m: targets.add(m.group(1))
        for t in targets:
            if os.path.exists(os.path.join(src, t + '.rs')) or os.path.isdir(os.path.join(src, t)):
                if t != me: g[me][t].append(os.path.relpath(p, os.path.dirname(src)))
idx, low, on, st, sccs, c = {}, {}, set(), [], [], [0]
def visit(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in sorted(g[v]):
        if w not in idx: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(sorted(comp))
nodes = set(g) | {b for a in list(g) for b in g[a]}
for v in sorted(nodes):
    if v not in idx: visit(v)
cyc = [s for s in sccs if len(s) > 1]
print(f"top-level modules: {len(nodes)}; edges: {sum(len(x) for x in g.values())}; cyclic components: {len(cyc)}")
for i, comp in enumerate(sorted(cyc, key=lambda s: (-len(s), s)), 1):
    cs = set(comp)
    print(f"\ncomponent {i}: {len(comp)} modules: {', '.join(comp)}")
    for a in comp:
        for b in sorted(set(g[a]) & cs):
            print(f"    {a} -> {b}    (in {', '.join(sorted(set(g[a][b]))[:4])})")

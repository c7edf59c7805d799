#!/usr/bin/env python3
"""Module-level import cycles from `cargo modules dependencies` DOT output.

Each node is mapped to the module that owns it (nearest "mod"/"crate" ancestor along "owns"
edges); every item-level "uses" edge becomes an edge between those modules (self-loops dropped).
Prints the strongly connected components with more than one module, each with its edges and one
witnessing item-level use per edge. With --top, modules are first collapsed to the crate's
top-level modules (crate root kept apart)."""
import re, sys, collections
path = sys.argv[1]; top = '--top' in sys.argv
node_re = re.compile(r'^\s*"([^"]+)" \[label="[^"]*", fillcolor="[^"]*"\]; // "([^"]+)" node')
edge_re = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[label="(owns|uses)"')
kind, parent, uses = {}, {}, []
for line in open(path):
    m = edge_re.match(line)
    if m:
        s, d, l = m.groups()
        if l == 'owns': parent[d] = s
        else: uses.append((s, d))
        continue
    m = node_re.match(line)
    if m: kind[m.group(1)] = m.group(2)
def module(n):
    while n in parent and kind.get(n) not in ('mod', 'crate'):
        n = parent[n]
    if top and n.count('::') > 1:
        n = '::'.join(n.split('::')[:2])
    return n
g = collections.defaultdict(set); wit = {}
for s, d in uses:
    a, b = module(s), module(d)
    if a != b:
        g[a].add(b); wit.setdefault((a, b), (s, d))
# Tarjan
idx, low, on, st, sccs, c = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(100000)
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
nodes = set(g) | {b for a in g for b in g[a]}
for v in sorted(nodes):
    if v not in idx: visit(v)
cyc = [s for s in sccs if len(s) > 1]
print(f"modules with uses: {len(nodes)}; module-level use edges: {sum(len(x) for x in g.values())}; "
      f"cyclic components: {len(cyc)}")
for i, comp in enumerate(sorted(cyc, key=lambda s: (-len(s), s)), 1):
    cs = set(comp)
    print(f"\ncomponent {i}: {len(comp)} modules")
    for m in comp: print(f"  {m}")
    print("  edges (module -> module: one item-level use that makes it):")
    for a in comp:
        for b in sorted(g[a] & cs):
            s, d = wit[(a, b)]
            print(f"    {a} -> {b}    ({s} uses {d})")

#!/usr/bin/python3
# Counts translation units under src/ whose project-include closure reaches a
# libtorch header (<ATen/...>, <torch/...>, <c10/...>), and which of those
# reach it through model/weights.h or cli/common.h.
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else '.'
src = os.path.join(root, 'src')
inc_re = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
cache = {}
def direct(path):
    if path not in cache:
        try: text = open(os.path.join(src, path)).read()
        except FileNotFoundError: cache[path] = ([], False); return cache[path]
        local, torch = [], False
        for kind, name in inc_re.findall(text):
            if kind == '"' and os.path.exists(os.path.join(src, name)): local.append(name)
            elif kind == '<' and re.match(r'(ATen|torch|c10)/', name): torch = True
        cache[path] = (local, torch)
    return cache[path]
def closure(path):
    seen, stack = set(), [path]
    while stack:
        p = stack.pop()
        if p in seen: continue
        seen.add(p); stack.extend(direct(p)[0])
    return seen
def reaches_torch(path): return any(direct(p)[1] for p in closure(path))
units = sorted(os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs if f.endswith('.cpp'))
torch_units = [u for u in units if reaches_torch(u)]
via = lambda h: [u for u in units if h in closure(u)]
print(f'units {len(units)}, reaching libtorch {len(torch_units)}')
w = via('model/weights.h'); print(f'  including model/weights.h (transitively): {len(w)}')
cli = [u for u in units if u.startswith('cli/')]
c = via('cli/common.h'); ct = [u for u in c if reaches_torch(u)]
print(f'  cli units {len(cli)}, including cli/common.h {len(c)}, of which reach libtorch {len(ct)}; cli units reaching libtorch {len([u for u in cli if reaches_torch(u)])}')
by = {}
for u in units:
    f = u.split('/')[0]; by.setdefault(f, [0, 0]); by[f][0] += 1; by[f][1] += reaches_torch(u)
print('  per folder (units, reaching libtorch):', ', '.join(f'{k} {v[0]}/{v[1]}' for k, v in sorted(by.items())))
if '-v' in sys.argv: print('\n'.join(torch_units))

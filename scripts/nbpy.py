"""Write notebooks from plain text and back, for authoring notebooks in an editor (the notebook stays the source).

Usage: python scripts/nbpy.py tonb SRC.py NB.ipynb     # percent-format text -> notebook (outputs empty; run nbdev_clean after)
       python scripts/nbpy.py topy NB.ipynb [SRC.py]   # notebook -> percent-format text (stdout when SRC is omitted)
Format: a line `# %%` starts a code cell; `# %% [md]` starts a markdown cell whose lines are plain markdown.
Text before the first marker is ignored. Cell ids are a hash of position and source (stable across conversions). Trailing blank lines of a cell are dropped.
"""
from __future__ import annotations
import hashlib, json, sys
from pathlib import Path

def _cell(kind: str, lines: list[str]) -> dict:
    while lines and not lines[-1].strip(): lines.pop()
    while lines and not lines[0].strip(): lines.pop(0)
    src = [l + '\n' for l in lines]
    if src: src[-1] = src[-1].rstrip('\n')
    if kind == 'markdown': return {'cell_type': 'markdown', 'metadata': {}, 'source': src}
    return {'cell_type': 'code', 'execution_count': None, 'metadata': {}, 'outputs': [], 'source': src}

def tonb(src: str, nb: str) -> None:
    cells, kind, lines = [], None, []
    for line in Path(src).read_text().splitlines():
        if line.strip() in ('# %%', '# %% [md]', '# %% [markdown]'):
            if kind: cells.append(_cell(kind, lines))
            kind, lines = ('markdown' if '[' in line else 'code'), []
        elif kind: lines.append(line)
    if kind: cells.append(_cell(kind, lines))
    for i, c in enumerate(cells):   # stable cell ids, so nbdev_export's `# %% nb #id` lines do not churn
        c['id'] = hashlib.sha1(f"{i}:{''.join(c['source'])}".encode()).hexdigest()[:8]
    out = {'cells': cells, 'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
           'nbformat': 4, 'nbformat_minor': 5}
    Path(nb).write_text(json.dumps(out, indent=1, ensure_ascii=False) + '\n')

def topy(nb: str) -> str:
    chunks = []
    for c in json.loads(Path(nb).read_text())['cells']:
        head = '# %% [md]' if c['cell_type'] == 'markdown' else '# %%'
        chunks.append(head + '\n' + ''.join(c['source']).rstrip('\n') + '\n')
    return '\n'.join(chunks)

if __name__ == '__main__':
    cmd, *args = sys.argv[1:]
    if cmd == 'tonb': tonb(*args)
    elif cmd == 'topy':
        text = topy(args[0])
        if len(args) > 1: Path(args[1]).write_text(text)
        else: sys.stdout.write(text)
    else: sys.exit(__doc__)

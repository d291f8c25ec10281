"""Build README.md from nbs/index.ipynb without Quarto (nbdev_readme needs Quarto, which cannot be installed offline).

Usage: python scripts/docs.py readme [--check]
Cells whose first lines carry `#| hide` are dropped, nbdev directive lines are removed, markdown cells are copied,
code cells become ```python blocks followed by their text/plain or stream outputs.
"""
from __future__ import annotations
import argparse, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r'^\s*#\s*\|\s*([\w-]+)(.*)$')

def directives(src: str) -> dict:
    "nbdev `#| name args` lines at the top of a cell."
    out = {}
    for line in src.splitlines():
        m = DIRECTIVE.match(line)
        if not m: break
        out[m.group(1)] = m.group(2).strip()
    return out

def strip_directives(src: str) -> str:
    return '\n'.join(l for l in src.splitlines() if not DIRECTIVE.match(l)).strip('\n')

def cell_output_text(cell) -> str:
    parts = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': parts.append(''.join(o['text']))
        elif 'data' in o and 'text/plain' in o['data']: parts.append(''.join(o['data']['text/plain']))
    return ''.join(parts).rstrip('\n')

def notebook_markdown(nb_path: Path) -> str:
    "Markdown for one notebook, honouring nbdev's hide/export directives (export cells are shown: they are the code)."
    nb = json.loads(nb_path.read_text())
    chunks = []
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        d = directives(src)
        if 'hide' in d or 'default_exp' in d: continue
        if cell['cell_type'] == 'markdown': chunks.append(src.strip('\n')); continue
        code = strip_directives(src)
        if code: chunks.append(f'```python\n{code}\n```')
        out = cell_output_text(cell)
        if out and 'hide_output' not in d: chunks.append(f'```\n{out}\n```')
    return '\n\n'.join(chunks) + '\n'

def readme(check: bool = False) -> int:
    text = '<!-- generated from nbs/index.ipynb by scripts/docs.py; edit the notebook, not this file -->\n\n' + notebook_markdown(ROOT/'nbs'/'index.ipynb')
    path = ROOT/'README.md'
    if check:
        if path.read_text() != text:
            print('README.md is out of date with nbs/index.ipynb: run `python scripts/docs.py readme`', file=sys.stderr); return 1
        return 0
    path.write_text(text); return 0

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('readme'); r.add_argument('--check', action='store_true')
    a = p.parse_args()
    sys.exit(readme(a.check))

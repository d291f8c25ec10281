"""Build README.md and the docs site from the notebooks without Quarto (nbdev_readme/nbdev_docs need Quarto, which cannot be installed offline).

Usage: python scripts/docs.py readme [--check]      # README.md from nbs/index.ipynb
       python scripts/docs.py site [--out _docs]    # HTML site: nbdev's own notebook processing (_proc), then nbconvert
Users with Quarto can still run `nbdev_docs`.
README: Cells whose first lines carry `#| hide` are dropped, nbdev directive lines are removed, markdown cells are copied,
code cells become ```python blocks followed by their text/plain or stream outputs.
Site: Quarto-only markdown that nbconvert would print as text is converted first: the `[source](url){target=... style=...}`
link attributes that nbdev's show_doc emits become an HTML link, and a markdown cell written as a wall of `# `-prefixed
lines (every line an H1) is un-prefixed, with a warning naming the notebook and cell (tests/test_docs.py fails on those).
"""
from __future__ import annotations
import argparse, html, json, re, sys
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

def _frontmatter(src: str) -> dict:
    import yaml
    body = src.strip().strip('-').strip()
    return yaml.safe_load(body) or {}

LINK_ATTRS = re.compile(r'(!?)\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}')   # [text](url){attributes}: Quarto/pandoc syntax
ATTR = re.compile(r'([\w-]+)=(?:"([^"]*)"|\'([^\']*)\'|(\S+))')

def quarto_links(md: str) -> str:
    "Pandoc link attributes (`[source](url){target=\"_blank\" style=\"...\"}`, as nbdev's show_doc writes) -> an HTML `<a>`/`<img>`."
    def repl(m):
        bang, text, url, attrs = m.groups()
        kv = {a.group(1): next(g for g in a.groups()[1:] if g is not None) for a in ATTR.finditer(attrs)}
        extra = ''.join(f' {k}="{html.escape(v)}"' for k, v in kv.items())
        if bang: return f'<img src="{html.escape(url)}" alt="{html.escape(text)}"{extra}>'
        return f'<a href="{html.escape(url)}"{extra}>{text}</a>'
    return LINK_ATTRS.sub(repl, md)

def _outside_fences(lines):
    "The lines of a markdown text that are not inside ``` / ~~~ fenced code blocks."
    fence = None
    for l in lines:
        s = l.lstrip()
        if fence is None and (s.startswith('```') or s.startswith('~~~')): fence = s[:3]; continue
        if fence is not None:
            if s.startswith(fence): fence = None
            continue
        yield l

def h1_lines(md: str) -> list[str]:
    "The ATX H1 lines (`# title`) of a markdown text, fenced code excluded."
    return [l for l in _outside_fences(md.splitlines()) if re.match(r'#(\s|$)', l) and not l.startswith('#|')]

def uncomment_heading_wall(md: str) -> str | None:
    "A markdown cell written like a code comment (every line `# ...` or `#`, so each renders as an H1), un-prefixed; None otherwise."
    lines = md.splitlines()
    if len(h1_lines(md)) < 2 or not all(re.match(r'#( |$)', l) for l in lines if l.strip()): return None
    return '\n'.join(l[2:] if l.startswith('# ') else l[1:] for l in lines)

def site_markdown(md: str, where: str = '') -> str:
    "Markdown of a cell or a text/markdown output, made renderable by nbconvert (see the module docstring)."
    fixed = uncomment_heading_wall(md)
    if fixed is not None:
        print(f'warning: {where}: markdown cell has every line prefixed with "# " (a wall of H1 headings); rendered without the prefixes', file=sys.stderr)
        md = fixed
    return quarto_links(md)

def site(out: str = '_docs', n_workers: int = 1) -> Path:
    "Process notebooks with nbdev (show_doc signatures + docments, hide/export honoured), then render each to HTML with nbconvert."
    import nbformat
    from nbconvert import HTMLExporter
    from nbdev.serve import proc_nbs
    proc = proc_nbs(n_workers=n_workers)
    out = ROOT/out; out.mkdir(exist_ok=True)
    exporter = HTMLExporter(template_name='lab')
    pages, rendered = [], {}
    nb_paths = sorted(Path(proc).glob('*.ipynb'), key=lambda p: (p.stem == 'index', p.stem))  # index last: it gets the contents
    for nb_path in nb_paths:
        nb = nbformat.read(nb_path, as_version=4)
        cells, meta = [], {}
        for cell in nb.cells:
            if cell.cell_type == 'raw' and cell.source.lstrip().startswith('---'):
                meta = _frontmatter(cell.source)
                head = f"# {meta.get('title', nb_path.stem)}"
                if meta.get('description'): head += f"\n\n> {meta['description']}"
                cells.append(nbformat.v4.new_markdown_cell(head)); continue
            if cell.cell_type == 'code':
                d = directives(cell.source)
                if 'hide' in d or 'default_exp' in d: continue
                if d.get('echo') == 'false': cell.metadata['transient'] = {'remove_source': True}
                cell.source = strip_directives(cell.source)
                if not cell.source and not cell.get('outputs'): continue
                for o in cell.get('outputs', []):
                    if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = quarto_links(o['data']['text/markdown'])
            elif cell.cell_type == 'markdown': cell.source = site_markdown(cell.source, f"nbs/{nb_path.name} cell id {cell.get('id')}")
            cells.append(cell)
        name = meta.get('output-file', nb_path.stem + '.html')
        if nb_path.stem == 'index':
            toc = '\n'.join(f'- [{t}]({n}): {d}' for n, t, d in pages)
            cells.append(nbformat.v4.new_markdown_cell('## Contents\n\n' + toc))
        else: pages.append((name, meta.get('title', nb_path.stem), meta.get('description', '')))
        nb.cells = cells
        html, _ = exporter.from_notebook_node(nb)
        (out/name).write_text(html)
    return out

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('readme'); r.add_argument('--check', action='store_true')
    s = sub.add_parser('site'); s.add_argument('--out', default='_docs')
    a = p.parse_args()
    if a.cmd == 'site': print(f'docs site written to {site(a.out)}/index.html'); sys.exit(0)
    sys.exit(readme(a.check))

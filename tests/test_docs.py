"""The docs site builds from the notebooks without Quarto, README.md is in sync with nbs/index.ipynb, and the notebooks
read as lessons: one H1 (the title) per notebook, no markdown cell written as a wall of `# ` lines, no references to a
spec document users do not have, and no raw Quarto markup or literal `## ` headings on the built pages."""
import importlib.util, json, re, subprocess, sys
from html.parser import HTMLParser
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted((ROOT/'nbs').glob('*.ipynb'))
_spec = importlib.util.spec_from_file_location('hbac_docs_script', ROOT/'scripts'/'docs.py')
docs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(docs)

def test_readme_in_sync():
    r = subprocess.run([sys.executable, 'scripts/docs.py', 'readme', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

# --- notebook sources -------------------------------------------------------------------------------------------------

def _cells(nb_path):
    "(index, id, cell type, source) of every cell."
    nb = json.loads(nb_path.read_text())
    return [(i, c.get('id', '?'), c['cell_type'], ''.join(c['source'])) for i, c in enumerate(nb['cells'])]

def _where(nb_path, i, cid): return f'nbs/{nb_path.name} cell {i} (id {cid})'

@pytest.mark.parametrize('nb_path', NBS, ids=lambda p: p.stem)
def test_no_heading_walls(nb_path):
    "A markdown cell with several `# ` lines renders each as an H1: prose written like a code comment."
    bad = [f'{_where(nb_path, i, cid)}: {len(h1)} H1 lines, starting {h1[0]!r}'
           for i, cid, kind, src in _cells(nb_path) if kind == 'markdown' and len(h1 := docs.h1_lines(src)) > 1]
    assert not bad, 'markdown cells whose lines start with "# " (each renders as an H1 heading; write plain prose, ' \
                    '"## " for a section):\n' + '\n'.join(bad)

@pytest.mark.parametrize('nb_path', NBS, ids=lambda p: p.stem)
def test_one_h1_per_notebook(nb_path):
    "The notebook title is its only H1; sections are `##`."
    h1 = [f'{_where(nb_path, i, cid)}: {l!r}' for i, cid, kind, src in _cells(nb_path) if kind == 'markdown'
          for l in docs.h1_lines(src)]
    assert len(h1) <= 1, f'nbs/{nb_path.name} has {len(h1)} H1 lines (only the title should be one):\n' + '\n'.join(h1[:20])

@pytest.mark.parametrize('nb_path', NBS, ids=lambda p: p.stem)
def test_no_spec_references(nb_path):
    "Users do not have the spec document: say what the thing is instead of citing `SPEC §N`."
    nb = json.loads(nb_path.read_text())
    bad = []
    for i, c in enumerate(nb['cells']):
        texts = [''.join(c['source'])] + [json.dumps(o) for o in c.get('outputs', [])]
        for line in '\n'.join(texts).splitlines():
            if 'SPEC §' in line: bad.append(f"{_where(nb_path, i, c.get('id', '?'))} ({c['cell_type']}): {line.strip()[:120]!r}")
    assert not bad, 'references to "SPEC §" (a document users do not have):\n' + '\n'.join(bad)

# --- the docs script's markdown fixes ---------------------------------------------------------------------------------

def test_quarto_links():
    md = '---\n\n[source](https://x.org/a.py#L3){target="_blank" style="float:right; font-size:smaller"}\n\n### f'
    out = docs.quarto_links(md)
    assert '{target=' not in out and '<a href="https://x.org/a.py#L3"' in out and 'target="_blank"' in out, out
    assert 'style="float:right; font-size:smaller">source</a>' in out and out.endswith('### f'), out
    assert docs.quarto_links('[a](b) {not attributes}') == '[a](b) {not attributes}'

def test_h1_lines_and_heading_walls():
    assert docs.h1_lines('# Title\n\n> what it does') == ['# Title']
    assert docs.h1_lines('## Section\n\n```\n# a shell comment\n```\n#| not a heading') == []
    wall = '# ## Labels\n#\n# The target is the vote distribution:\n#   - indented'
    assert len(docs.h1_lines(wall)) == 4
    assert docs.uncomment_heading_wall(wall) == '## Labels\n\nThe target is the vote distribution:\n  - indented'
    assert docs.uncomment_heading_wall('# Title\n\n> description') is None        # one H1 and prose: left alone
    assert docs.uncomment_heading_wall('# A\nplain line\n# B') is None             # not every line prefixed

# --- the built site ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')/'site'
    r = subprocess.run([sys.executable, 'scripts/docs.py', 'site', '--out', str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out

def test_site_builds(site):
    index = (site/'index.html').read_text()
    pages = sorted(p.name for p in site.glob('*.html'))
    assert len(pages) == len(NBS), (pages, NBS)
    for page in pages:
        if page != 'index.html': assert f'href="{page}"' in index, page
    cli = (site/'cli.html').read_text()
    assert 'parse_modalities' in cli and 'a cache entry kind' in cli   # show_doc signature + docments
    assert '#| export' not in cli and 'default_exp' not in cli          # nbdev directives honoured
    assert re.search(r'<a href="https://[^"]+/hbac/cli\.py#L\d+"[^>]*target="_blank"[^>]*>source</a>', cli)  # show_doc link

class _Text(HTMLParser):
    "The text of a page outside code (pre, code, script, style), each piece with the tag it sits in."
    SKIP = {'pre', 'code', 'script', 'style', 'textarea'}
    def __init__(self):
        super().__init__(); self.stack, self.skip, self.texts = [], 0, []
    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP: self.skip += 1
        self.stack.append(tag)
    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip: self.skip -= 1
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag: pass
    def handle_data(self, data):
        if not self.skip and data.strip(): self.texts.append((self.stack[-1] if self.stack else '', data))

def _raw_markup(html: str) -> list[str]:
    p = _Text(); p.feed(html)
    bad = []
    for tag, text in p.texts:
        for line in text.splitlines():
            if '{target=' in line: bad.append(f'raw Quarto link attributes in <{tag}>: {line.strip()[:120]!r}')
            elif re.match(r'\s*#{1,6}\s', line): bad.append(f'literal markdown heading in <{tag}>: {line.strip()[:120]!r}')
    return bad

def test_raw_markup_detector():
    assert _raw_markup('<h1 id="x">## Labels<a href="#x">¶</a></h1>') == ["literal markdown heading in <h1>: '## Labels'"]
    assert _raw_markup('<p><a href="u">source</a>{target="_blank" style="float:right"}</p>')
    assert _raw_markup('<pre># a comment</pre><div class="highlight"><pre><span># c</span></pre></div><p>#5 is fine</p>') == []

def test_site_has_no_raw_markup(site):
    "nbconvert does not know Quarto's `{target=...}` link attributes, and a `#`-prefixed heading shows as literal text."
    bad = [f'{page.name}: {b}' for page in sorted(site.glob('*.html')) for b in _raw_markup(page.read_text())]
    assert not bad, 'markup rendered as text on the docs site:\n' + '\n'.join(bad[:40])

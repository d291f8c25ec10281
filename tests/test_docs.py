"The docs site builds from the notebooks without Quarto, and README.md is in sync with nbs/index.ipynb."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_in_sync():
    r = subprocess.run([sys.executable, 'scripts/docs.py', 'readme', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_site_builds(tmp_path):
    out = tmp_path/'site'
    r = subprocess.run([sys.executable, 'scripts/docs.py', 'site', '--out', str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    index = (out/'index.html').read_text()
    pages = sorted(p.name for p in out.glob('*.html'))
    nbs = [p for p in (ROOT/'nbs').glob('*.ipynb')]
    assert len(pages) == len(nbs), (pages, nbs)
    for page in pages:
        if page != 'index.html': assert f'href="{page}"' in index, page
    cli = (out/'cli.html').read_text()
    assert 'parse_modalities' in cli and 'a modality name or' in cli   # show_doc signature + docments
    assert '#| export' not in cli and 'default_exp' not in cli          # nbdev directives honoured

"The package is layered by its notebooks: a module imports only modules whose notebooks come earlier (`nbs/` in name order), so its import graph has no cycle."
import ast, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _notebooks()->dict:
    "Module name -> the notebook that exports it."
    out = {}
    for f in sorted((ROOT / "nbs").glob("*.ipynb")):
        m = re.search(r"#\| default_exp (\w+)", f.read_text())
        if m: out[m.group(1)] = f.stem
    return out

def _imports(path:Path, modules:set)->set:
    "The package's modules `path` imports, at the top or inside a function."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("cit_study")):
            mod = (node.module or "").removeprefix("cit_study").lstrip(".")
            names = [mod.split(".")[0]] if mod else [a.name for a in node.names]
        elif isinstance(node, ast.Import): names = [a.name.split(".")[1] for a in node.names if a.name.startswith("cit_study.")]
        else: continue
        found |= {n for n in names if n in modules and n != path.stem}
    return found

def test_every_module_imports_only_earlier_notebooks_modules():
    nbs = _notebooks()
    assert {"core", "config", "results", "notebooks", "runner", "sweeps", "study", "methods"} <= set(nbs)
    up = [f"{m} ({nbs[m]}) imports {d} ({nbs[d]})" for m in nbs for d in sorted(_imports(ROOT / "cit_study" / f"{m}.py", set(nbs)))
          if nbs[d] > nbs[m]]
    assert not up, "upward imports: " + "; ".join(up)

def test_the_check_sees_an_upward_import(tmp_path):
    p = tmp_path / "core.py"; p.write_text("def f():\n    from cit_study.study import run_study\nfrom .config import RunConfig\n")
    assert _imports(p, {"core", "study", "config"}) == {"study", "config"}

"The optional LAVIS environment (`make lavis-env`): slow (a ~7 GB install), so it runs only with CIT_STUDY_SLOW=1."
import os, subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(os.environ.get("CIT_STUDY_SLOW") != "1", reason="slow: set CIT_STUDY_SLOW=1 to build the LAVIS environment")
def test_lavis_env_builds_and_imports():
    p = subprocess.run(["make", "lavis-env"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "lavis imports from" in p.stdout
    main = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", "import importlib.util; print(importlib.util.find_spec('lavis'))"],
                          capture_output=True, text=True)
    assert main.stdout.strip() == "None"  # never in the main environment

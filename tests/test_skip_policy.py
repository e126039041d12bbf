"""The skip policy of tests/conftest.py: as root with CPAR_REQUIRE_ALL=1 (what `make test`
sets) a skipped launcher or network-namespace test fails the run; other skips stay skips."""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

FAKE_NETNS = """
import pytest

def test_skipped_in_body():
    pytest.skip("no netns here")

@pytest.mark.skipif(True, reason="by a mark")
def test_skipped_by_mark():
    pass

def test_runs():
    pass
"""

FAKE_LAUNCHERS = """
import pytest
pytest.skip("no daemons", allow_module_level=True)
"""

FAKE_OTHER = """
import pytest

def test_other_skip():
    pytest.skip("allowed elsewhere")
"""


def _run(tmp_path, files, require):
    tests = tmp_path / "tests"
    tests.mkdir(exist_ok=True)
    for name in ("conftest.py", "launchkit.py"):
        shutil.copy(os.path.join(HERE, name), tests / name)
    for name, text in files.items():
        (tests / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CPAR_REQUIRE_ALL"}
    if require:
        env["CPAR_REQUIRE_ALL"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tests)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_skip_of_a_must_run_test_fails_as_root(tmp_path):
    out = _run(tmp_path, {"test_netns.py": FAKE_NETNS, "test_other.py": FAKE_OTHER}, True)
    if os.geteuid() == 0:
        assert out.returncode == 1, out.stdout
        assert "1 failed, 1 passed, 1 skipped, 1 error" in out.stdout, out.stdout
        assert "no netns here" in out.stdout and "by a mark" in out.stdout
        assert "SKIPPED [1] tests/test_other.py" in out.stdout  # reported by -rs
    else:  # not root: daemons may be impossible to start, so skips stay skips
        assert out.returncode == 0, out.stdout
        assert "1 passed, 3 skipped" in out.stdout, out.stdout


def test_module_skip_of_a_must_run_file_fails_at_the_end(tmp_path):
    out = _run(tmp_path, {"test_launchers.py": FAKE_LAUNCHERS, "test_other.py": FAKE_OTHER},
               True)
    if os.geteuid() == 0:
        assert out.returncode == 1, out.stdout
        assert "FAILED tests/test_launchers.py: skipped as a whole" in out.stdout, out.stdout
    else:
        assert out.returncode == 0, out.stdout


def test_without_require_all_skips_stay_skips(tmp_path):
    out = _run(tmp_path, {"test_netns.py": FAKE_NETNS, "test_launchers.py": FAKE_LAUNCHERS}, False)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 3 skipped" in out.stdout, out.stdout

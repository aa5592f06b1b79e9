"""Every ```python block of docs/**/*.md is a complete example that runs:
each in an interpreter of its own (so they run in parallel and share
nothing), in a scratch directory, within EXAMPLE_TIMEOUT_S. A block marked
<!-- not-run: reason --> right before it is skipped with that reason
(multi-host snippets)."""
import os
import subprocess
import sys

import pytest

from docpages import DOCS, blocks, not_run_marks, pages, python_blocks

EXAMPLE_TIMEOUT_S = 60
BLOCKS = python_blocks()


def test_the_docs_have_examples():
    assert len(BLOCKS) >= 10, f"only {len(BLOCKS)} python blocks found under {DOCS}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example_runs(block, tmp_path):
    if block.not_run is not None:
        pytest.skip(f"{block.id} is marked not-run: {block.not_run}")
    script = tmp_path / "example.py"
    script.write_text(block.code)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=EXAMPLE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{block.id}: still running after {EXAMPLE_TIMEOUT_S}s (killed); output so far:\n"
                    f"{_text(e.stdout)}{_text(e.stderr)}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"{block.id} exited {done.returncode}\n--- code\n{block.code}"
                    f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}", pytrace=False)


def _text(output):
    """What a killed run printed (bytes on some Pythons, even with text=True)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@pytest.mark.parametrize("page", pages(), ids=[str(p.relative_to(DOCS)) for p in pages()])
def test_every_not_run_mark_gives_a_reason_and_precedes_a_python_block(page):
    marked = {b.line for b in blocks(page) if b.not_run is not None and b.lang.startswith("py")}
    reasons = {b.line: b.not_run for b in blocks(page) if b.not_run is not None}
    assert all(reasons.values()), f"{page}: a not-run mark without a reason: {reasons}"
    assert len(marked) == len(not_run_marks(page)), \
        f"{page}: not-run marks at lines {not_run_marks(page)}, but python blocks after them at {sorted(marked)}"

"""The fabric matrix (`make matrix`): every backend x transport x protocol
family and message size of ci/matrix.yaml through the lab harness, into
build/matrix/{report.html, results.json, junit.xml}.

    spec.py          ci/matrix.yaml: axes, exclusions, the QUICK slice
    run.py           per backend: bring the lab up, the pytest runs
    pytest_cells.py  the plugin that tags each test's JUnit entry with its cell
    junit.py         JUnit XML in (pytest's) and out (one testcase per cell)
    cells.py         test results -> cell outcomes
    results.py       results.json, previous.json
    diff.py          regressions against the previous run
    plots.py         latency and bandwidth against size (matplotlib)
    report.py        the HTML report
    render.py        headless Chromium: screenshot, DOM, checks
"""

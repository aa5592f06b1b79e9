"""docs/options.md tells the truth about the options and statistics: it
lists every option of nnofi/options.py (and no other), each with the
default a fresh socket reports, on the socket types that have it; and
every `stats` key, with no key the library does not have."""
import json
import os
import subprocess
import sys

import pytest

from docpages import DOCS, literals, table
from nnofi.options import OPTIONS, STATS

PAGE = DOCS / "options.md"
OPTION_ROWS = {literals(r["option"])[0]: r for r in table(PAGE, "option")}
STAT_ROWS = {literals(r["key"])[0]: r for r in table(PAGE, "key")}

# What a fresh socket reports, read in a clean interpreter (NNOFI_SPIN_US
# would change spin_us's default). argv[1]: {option: socket class}.
READ_DEFAULTS = """
import json, sys
import nnofi
out = {}
for option, cls in json.loads(sys.argv[1]).items():
    with getattr(nnofi, cls)() as sock:
        out[option] = getattr(sock, option)
print(json.dumps(out))
"""


def socket_types(row):
    """The classes the row's sockets column names (none: every type)."""
    names = [n for n in literals(row["sockets"]) if n[:1].isupper()]
    return names


def documented_default(option):
    cell = OPTION_ROWS[option]["default"]
    values = literals(cell)
    assert values, f"options.md: {option}'s default {cell!r} has no `value`"
    default = int(values[0].replace("_", ""), 0)
    if option == "spin_us" and os.sysconf("SC_NPROCESSORS_ONLN") == 1:
        assert "`0`" in cell, f"options.md: spin_us should say it is 0 on one core: {cell!r}"
        return 0
    return default


def test_every_option_is_documented_and_nothing_else():
    assert set(OPTION_ROWS) == set(OPTIONS), (
        f"missing from options.md: {sorted(set(OPTIONS) - set(OPTION_ROWS))}; "
        f"documented but no option: {sorted(set(OPTION_ROWS) - set(OPTIONS))}")


def test_each_documented_default_is_what_a_socket_reports():
    where = {o: (socket_types(r) or ["Pair"])[0] for o, r in OPTION_ROWS.items() if o in OPTIONS}
    env = {k: v for k, v in os.environ.items() if k != "NNOFI_SPIN_US"}
    done = subprocess.run([sys.executable, "-c", READ_DEFAULTS, json.dumps(where)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    real = json.loads(done.stdout)
    wrong = {o: (documented_default(o), real[o]) for o in where if documented_default(o) != real[o]}
    assert not wrong, f"options.md default != the library's (documented, real): {wrong}"


@pytest.mark.parametrize("option", sorted(o for o, r in OPTION_ROWS.items() if socket_types(r)))
def test_an_option_of_some_socket_types_is_refused_by_others(option):
    import nnofi
    for cls in socket_types(OPTION_ROWS[option]):
        with getattr(nnofi, cls)() as sock:
            getattr(sock, option)
    with nnofi.Pair() as pair:
        with pytest.raises(nnofi.NotSupported):
            getattr(pair, option)


def test_every_stats_key_is_documented_and_nothing_else():
    assert set(STAT_ROWS) == set(STATS), (
        f"missing from options.md: {sorted(set(STATS) - set(STAT_ROWS))}; "
        f"documented but no such key: {sorted(set(STAT_ROWS) - set(STATS))}")
    assert all(r["meaning"] for r in STAT_ROWS.values())

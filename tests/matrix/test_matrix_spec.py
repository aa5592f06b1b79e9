"""ci/matrix.yaml: it loads, declares the axes the nightly matrix promises,
every cell is listed once, exclusions carry reasons, and mistakes name
the field. No lab, no processes."""
import copy
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # ci/ is no installed package
from ci.matrix import spec as S  # noqa: E402

RAW = yaml.safe_load(S.DEFAULT_SPEC.read_text())


def test_the_matrix_declares_every_axis():
    spec = S.load()
    assert set(spec.backends) == {"local", "netns", "docker", "ssh"}
    assert {"tcp", "sockets", "shm", "tcp;ofi_rxm", "verbs"} <= set(spec.providers.values())
    assert {t.kind for t in spec.transports} == {"tcp", "ipc", "ofi"}
    assert sorted(spec.socket_types) == sorted(["PAIR", "REQ", "REP", "PUB", "SUB", "PUSH", "PULL",
                                                "SURVEYOR", "RESPONDENT", "BUS"])
    cells = spec.cells()
    assert len(cells) == len({c.id for c in cells}) == \
        len(spec.backends) * len(spec.transports) * (len(spec.families) + len(spec.sizes))


def test_every_test_the_matrix_names_exists():
    spec = S.load()
    for test in [t for f in spec.families for t in f.tests] + spec.data_tests:
        path, _, name = test.partition("::")
        assert (ROOT / path).is_file(), test
        assert not name or f"def {name}(" in (ROOT / path).read_text(), test


def test_what_reaches_one_node_is_excluded_from_families_without_a_same_node_test():
    spec = S.load()
    for family in spec.families:
        same_node = any("same_node" in t for t in family.tests)
        for transport in spec.same_node_only:
            cell = S.Cell("local", transport, family.name)
            assert bool(spec.excluded(cell)) != same_node, (family.name, transport)


def test_the_quick_slice_is_small_and_covers_every_family():
    spec = S.load()
    quick = [c for c in spec.cells() if spec.quick.holds(c) and not spec.excluded(c)]
    assert 10 <= len(quick) <= 60
    assert {c.column for c in quick} == set(spec.columns) - {
        S.size_label(s) for s in spec.sizes if s not in spec.quick.sizes}


@pytest.mark.parametrize("change, error", [
    (lambda d: d.update(colour="red"), "colour: unknown key(s)"),
    (lambda d: d.update(transports=["tcp", "udp"]), "transports: udp: not among tcp, ipc, ofi"),
    (lambda d: d["families"]["bus"].update(types=["BUS", "XBUS"]), "families.bus.types: XBUS: not among"),
    (lambda d: d["families"].pop("bus"), "families: no family covers BUS"),
    (lambda d: d["data"].update(sizes=[64, "4 GB"]), "data.sizes: '4 GB' is not a size"),
    (lambda d: d["exclusions"][0].pop("reason"), "exclusions[0]: an exclusion needs a reason"),
    (lambda d: d["exclusions"][0].update(transports=["ofi+nope"]), "exclusions[0].transports: ofi+nope"),
    (lambda d: d["quick"].update(sizes=[128]), "quick.sizes: 128B not in data.sizes"),
    (lambda d: d["regression"].update(latency_pct=-1), "regression.latency_pct"),
])
def test_mistakes_name_the_field(change, error):
    data = copy.deepcopy(RAW)
    change(data)
    with pytest.raises(S.SpecError) as e:
        S.parse(data, source="m.yaml")
    assert str(e.value).startswith("m.yaml: ") and error in str(e.value), str(e.value)


def test_sizes():
    assert [S.parse_size(v) for v in (64, "4KiB", "1MiB", "100B")] == [64, 4096, 1 << 20, 100]
    assert [S.size_label(s) for s in (64, 4096, 1 << 20, 100_000)] == ["64B", "4KiB", "1MiB", "100000B"]

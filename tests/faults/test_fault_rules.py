"""The fault rules as text, and the lab lock: no lab needed (every
`make test` runs these)."""
import os
import subprocess
import sys
import threading
import time

import pytest

from nnofi_lab.faults import (LabBusy, LabLock, input_rules, nft_table, parse_rate, port_blocks,
                              tc_class_script)


@pytest.mark.parametrize("first, last", [(20000, 20499), (20500, 20999), (0, 65535), (1, 1), (31999, 32768)])
def test_port_blocks_cover_exactly_the_range(first, last):
    covered = set()
    for value, mask in port_blocks(first, last):
        block = {p for p in range(value, value + (~mask & 0xFFFF) + 1)}
        assert value & ~mask & 0xFFFF == 0 and not block & covered
        covered |= block
    assert covered == set(range(first, last + 1))
    assert len(port_blocks(20000, 20499)) <= 8


def test_drop_rules_match_the_peers_on_either_port():
    assert input_rules(["10.0.0.2", "10.0.0.3"], (20000, 20499), "drop") == [
        "ip saddr { 10.0.0.2, 10.0.0.3 } meta l4proto { tcp, udp } th sport 20000-20499 drop",
        "ip saddr { 10.0.0.2, 10.0.0.3 } meta l4proto { tcp, udp } th dport 20000-20499 drop"]
    assert input_rules(["10.0.0.2"], None, "drop") == ["ip saddr { 10.0.0.2 } drop"]
    assert input_rules(["10.0.0.2"], None, "drop", percent=10) == \
        ["ip saddr { 10.0.0.2 } numgen random mod 100 < 10 drop"]


def test_reset_rules_let_resets_through():
    rules = input_rules(["10.0.0.2"], (1, 2), "reset")
    assert "ip saddr { 10.0.0.2 } meta l4proto tcp th sport 1-2 tcp flags & rst == 0 reject with tcp reset" in rules
    assert "ip saddr { 10.0.0.2 } meta l4proto udp th dport 1-2 drop" in rules
    with pytest.raises(ValueError, match="drop or reset"):
        input_rules(["10.0.0.2"], None, "silence")


def test_nft_table_hooks_input_ahead_of_the_nodes_own():
    text = nft_table("nnofi_lab_x", ["ip saddr { 1.2.3.4 } drop"])
    assert text.startswith("table inet nnofi_lab_x {")
    assert "type filter hook input priority -10; policy accept;" in text
    assert "    ip saddr { 1.2.3.4 } drop\n" in text


def test_tc_class_with_netem_and_a_filter_per_port_block():
    lines = tc_class_script("eth0", 0x2901, 8_000_000, ["10.0.0.2"], (20000, 20031), "delay 50ms").splitlines()
    assert lines[0] == "class add dev eth0 parent 4e4e: classid 4e4e:2901 htb rate 8000000bit ceil 8000000bit quantum 100000"
    assert lines[1] == "qdisc add dev eth0 parent 4e4e:2901 handle 2901: netem delay 50ms"
    assert lines[2:] == [f"filter add dev eth0 parent 4e4e: protocol ip prio {0x2901} u32 match ip dst 10.0.0.2/32 "
                         f"match ip {side} 20000 0xffe0 flowid 4e4e:2901" for side in ("sport", "dport")]


@pytest.mark.parametrize("rate, bits", [(8000, 8000), ("8mbit", 8_000_000), ("500kbit", 500_000),
                                        ("1.5gbit", 1_500_000_000), ("2mbps", 16_000_000)])
def test_parse_rate(rate, bits):
    assert parse_rate(rate) == bits


def test_parse_rate_says_what_it_takes():
    with pytest.raises(ValueError, match="like 8mbit"):
        parse_rate("fast")


def test_lab_lock_shares_and_excludes(tmp_path):
    lock = LabLock(tmp_path)
    with lock.hold(exclusive=False), lock.hold(exclusive=False, timeout=0):
        with pytest.raises(LabBusy):
            with lock.hold(exclusive=True, timeout=0.1):
                pass
    with lock.hold(exclusive=True):
        with pytest.raises(LabBusy):
            with lock.hold(exclusive=False, timeout=0.1):
                pass


def test_a_waiting_exclusive_holder_goes_before_new_shared_ones(tmp_path):
    lock, order = LabLock(tmp_path, timeout=10), []

    def hold(exclusive, name, seconds):
        with lock.hold(exclusive):
            order.append(name)
            time.sleep(seconds)
    first = threading.Thread(target=hold, args=(False, "shared 1", 0.4))
    writer = threading.Thread(target=hold, args=(True, "exclusive", 0.1))
    late = threading.Thread(target=hold, args=(False, "shared 2", 0))
    first.start()
    time.sleep(0.1)
    writer.start()
    time.sleep(0.1)
    late.start()
    for t in (first, writer, late):
        t.join(10)
    assert order == ["shared 1", "exclusive", "shared 2"]


def test_heal_leaves_a_lab_a_test_holds_alone(tmp_path):
    (tmp_path / "healtest.yaml").write_text("backend: local\nnodes:\n  - {name: h1, address: 127.0.0.31}\n")
    env = dict(os.environ, NNOFI_LAB_TOPOLOGIES=str(tmp_path), NNOFI_LAB_STATE=str(tmp_path / "state"))
    heal = [sys.executable, "-m", "nnofi_lab", "heal", "--topology", "healtest"]
    r = subprocess.run(heal, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    with LabLock(tmp_path / "state" / "healtest").hold(exclusive=False):  # a test of some run
        r = subprocess.run(heal, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "in use by a test run: its faults are left alone" in r.stdout, r.stdout

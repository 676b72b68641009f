"""``atoll up``'s own choices: which topology runs, and what the summary says."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll import topology
from atoll.cli import supervisor as sv
from atoll.cli import up

MINE = "clusters: [{name: mine, provider: aws, region: r1, nodes: [{count: 3, costPerHour: 0.5}]}]\n"
RECORDED = "clusters: [{name: recorded, nodes: [{}]}]\n"


@pytest.mark.parametrize(("given", "recorded", "expected"), [
    (True, True, "mine"),          # --topology wins, even over what the state directory runs
    (False, True, "recorded"),     # resuming: the topology the state directory already runs
    (False, False, "aws-eu-west-1"),  # a fresh directory: the shipped default
])
def test_which_topology_runs(tmp_path: Path, given: bool, recorded: bool, expected: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(MINE)
    state = tmp_path / "state"
    state.mkdir()
    if recorded:
        (state / sv.TOPOLOGY_FILE).write_text(RECORDED)
    text, _ = up.topology_text(path if given else None, state)
    assert topology.parse(text).clusters[0].name == expected


def test_a_bad_recorded_topology_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / sv.TOPOLOGY_FILE).write_text("clusters: []")
    with pytest.raises(sv.SupervisorError, match="at least one cluster") as info:
        up.topology_text(None, tmp_path)
    assert info.value.code == sv.EXIT_USAGE


def test_summary_rows_name_the_federation_first_then_every_member(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    sup = sv.Supervisor(tmp_path / "state", topology_text=MINE)
    sup._plan(None)
    sup.state.federation.url = "https://127.0.0.1:1"
    sup.state.members["mine"].url = "https://127.0.0.1:2"
    assert up.summary_rows(sup) == [
        {"cluster": "atoll", "provider": "federation", "region": "", "nodes": "", "cost": "",
         "api": "https://127.0.0.1:1"},
        {"cluster": "mine", "provider": "aws", "region": "r1", "nodes": "3", "cost": "$1.50",
         "api": "https://127.0.0.1:2"}]

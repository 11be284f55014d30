"""The team tier's outbox on a developer's machine: ordered, durable across a kill -9 of the process
that wrote it, and sent exactly once when the team server applies an op and its answer is lost.

The team server here is ``tests/team_stub.py`` on loopback (another system, seen from the daemon);
the store, the model and the outbox are the real ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clarity.memory import MemoryService
from clarity.models import MemoryCreate, MemoryPatch
from clarity.team.client import TeamUnreachable
from clarity.team.outbox import FILE_NAME, Outbox
from clarity.team.share import SHARED

from .team_local import attach, local_service
from .team_stub import StubState, team_stub

PROJECT = "deploy-0123456789ab"
local = pytest.fixture(local_service, name="local")


def _ops_sent(state: StubState) -> list[list[tuple[str, str]]]:
    """Each POST /ops as (kind, memory id) in the order it carried them."""
    sent = []
    for body in state.bodies:
        if body.startswith(b"/team/v1/ops "):
            ops = json.loads(body.split(b" ", 1)[1])["ops"]
            sent.append([(op["kind"], op["memory"]["id"] if op["kind"] == "put" else op["id"]) for op in ops])
    return sent


def test_ops_leave_in_the_order_they_came_and_only_once_answered(tmp_path: Path) -> None:
    box = Outbox(tmp_path / FILE_NAME)
    ids = [box.enqueue("put", f"m{i}", PROJECT) for i in range(5)]
    box.enqueue("delete", "m1", PROJECT)
    head = box.head(3)
    assert [op.op_id for op in head] == ids[:3]
    assert box.pending(["m1", "m9"]) == {"m1"}
    box.remove([head[0].seq, head[1].seq])
    assert [op.memory_id for op in box.head(10)] == ["m2", "m3", "m4", "m1"]
    assert box.waiting() == 4
    assert box.cursors() == {PROJECT: 0}  # a project shared in is pulled from then on
    box.set_cursor(PROJECT, 1234)
    box.close()
    again = Outbox(tmp_path / FILE_NAME)
    assert again.waiting() == 4 and again.cursors() == {PROJECT: 1234}
    again.close()


_WRITER = """
import sys, time
from pathlib import Path
from clarity.team.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
for i in range(3):
    print(box.enqueue("put", f"memory-{i}", "deploy-0123456789ab"), flush=True)
time.sleep(600)  # killed here, between the enqueue and any send
"""


def test_an_enqueued_op_survives_a_kill_9_of_the_process_that_wrote_it(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert writer.stdout is not None
        written = [writer.stdout.readline().strip() for _ in range(3)]
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    box = Outbox(path)
    assert [(op.op_id, op.memory_id) for op in box.head(10)] == [
        (w, f"memory-{i}") for i, w in enumerate(written)
    ]
    box.close()


def test_exactly_once_when_the_server_applies_an_op_and_hangs_up(local: MemoryService) -> None:
    with team_stub() as (url, state):
        sync = attach(local, url)
        stored = local.store(MemoryCreate(content="We deploy with `make ship`.", shared=True), PROJECT)
        assert stored.team == SHARED and stored.memory.shared
        assert sync.outbox.waiting() == 1
        state.drop_answers = 1  # applied, then the connection drops before the answer
        with pytest.raises(TeamUnreachable):
            sync.round(pull=False)
        assert sync.outbox.waiting() == 1  # no answer: the op stays
        assert list(state.applied.values()) == [1]
        sync.round(pull=False)  # sent again under the same op id: "duplicate"
        assert sync.outbox.waiting() == 0
        assert list(state.applied.values()) == [1]
        assert [c.id for c in state.changes] == [stored.id]
        assert len(_ops_sent(state)) == 2


def test_a_put_goes_with_the_record_and_vector_as_they_are_and_in_order(local: MemoryService) -> None:
    with team_stub() as (url, state):
        sync = attach(local, url)
        first = local.store(MemoryCreate(content="Staging runs on port 8443.", shared=True), PROJECT)
        second = local.store(MemoryCreate(content="Releases are cut on Tuesdays.", shared=True), PROJECT)
        local.update(first.id, MemoryPatch(content="Staging runs on port 9443."))
        gone = local.store(MemoryCreate(content="The old CI job is called nightly-x.", shared=True), PROJECT)
        local.delete(gone.id)
        sync.round(pull=False)
        assert _ops_sent(state) == [
            [("put", first.id), ("put", second.id), ("put", first.id), ("delete", gone.id)]
        ]  # the put of the deleted memory needs no send: its delete follows
        kept = state.records[first.id]
        assert kept.memory is not None and kept.memory.content == "Staging runs on port 9443."
        assert kept.memory.author == "alice"
        found = local.record_with_vector(first.id)
        assert found is not None and kept.vector == pytest.approx(found[1])
        assert kept.memory.session_id is None and kept.memory.access_count == 0  # this developer's own

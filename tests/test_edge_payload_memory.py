"""Payloads of the embedded engine are read into RAM when a shard opens (``shard_config``'s
``payload_memory``): a search's final payloads are then memory reads, not one disk read per
memory as with Qdrant's default, which at 1M memories cost 1.7-2.5 ms a search. Checked from
outside the engine: the segment's own config on disk, and this process's resident pages of the
payload files (``/proc/self/smaps``) right after opening, before any read."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from clarity.config import IndexParams
from clarity.store.base import PointData
from clarity.store.edge import EdgeStore

DIM = 384


def open_store(path: Path) -> EdgeStore:
    return EdgeStore(path, DIM, IndexParams(), active_max_points=200, build_in_background=False)


def fill(store: EdgeStore, n: int) -> list[str]:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    for start in range(0, n, 100):
        store.upsert(
            [
                PointData(
                    ids[i],
                    vectors[i].tolist(),
                    ([i], [1.0]),
                    {"content": f"memory {i} x" + rng.bytes(150).hex()},
                )
                for i in range(start, min(start + 100, n))
            ]
        )
    assert store.wait_for_index(120)
    assert store.builder.error is None
    return ids


def payload_storage_types(root: Path) -> dict[str, str]:
    """Each segment's payload placement, as the engine wrote it in its ``segment.json``."""
    found = {}
    for path in root.glob("shard-*/segments/*/segment.json"):
        config = json.loads(path.read_text())["config"]
        found[str(path.parent.relative_to(root))] = config["payload_storage_type"]["type"]
    return found


def resident_kb(path_part: str) -> int:
    """Resident KB of this process's mappings of files whose path contains ``path_part``."""
    total, counting = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header
            counting = len(fields) >= 6 and path_part in fields[5]
        elif counting and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A store that sealed and built segments, closed."""
    root = tmp_path_factory.mktemp("payload") / "s"
    store = open_store(root)
    ids = fill(store, 700)
    assert store.segments, store.info()
    store.close()
    return root, ids


def test_every_segment_keeps_its_payloads_in_ram(filled: tuple[Path, list[str]]) -> None:
    root, _ = filled
    types = payload_storage_types(root)
    assert types and set(types.values()) == {"in_ram_mmap"}, types


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_a_reopened_store_has_its_payloads_resident_before_any_read(filled: tuple[Path, list[str]]) -> None:
    root, ids = filled
    reopened = open_store(root)
    try:
        # The segments' payload files, mapped and already in RAM: nothing has been read.
        assert resident_kb(f"{root}/") > 0
        assert resident_kb("payload_storage/page_") >= 200, "payload pages were not read in at open"
        hits = reopened.get([ids[0], ids[650]])
        assert [hit.payload["content"].split(" x")[0] for hit in hits] == ["memory 0", "memory 650"]
    finally:
        reopened.close()

"""Re-encoding, in the background, the lexical vectors an older encoder made.

A change of the lexical encoding (``clarity.embedding.lexical.LEXICAL_VERSION``: BM25's expected
document length 256 -> 40) leaves the stored vectors weighted the old way; mixed with new ones,
their scores would not compare. Each record carries the version that made its vector
(``lexical_version``, indexed); the daemon re-encodes the older ones from their payloads (content,
tags, the kept lexical context) in batches, each under the writers' lock so that an update in
between is never undone, while searches go on. It resumes wherever it stopped: what is done is
recorded record by record, so a kill mid-way leaves only the rest to do, and running it again on
a store that is done costs one indexed count. The embedded engine does its active shard in place
and has a background build rewrite its indexed segments (``EdgeStore.reencode_lexical``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from clarity.embedding import LexicalEncoder
from clarity.embedding.lexical import LEXICAL_VERSION
from clarity.store.base import MemoryFilter, VectorStore
from clarity.store.space import InsufficientStorage

log = logging.getLogger(__name__)

UPGRADE_BATCH = 256  # records per lock hold: a few milliseconds of writes held back
RETRY_SECONDS = 30.0  # short of disk space: how long to wait before trying again


def stale_count(store: VectorStore) -> int:
    """Records whose lexical vector an older encoding made (0: the store is done)."""
    return store.count(MemoryFilter(lexical_version_below=LEXICAL_VERSION))


def upgrade_lexical(
    store: VectorStore,
    lexical: LexicalEncoder,
    hold: Callable[[], AbstractContextManager[None]],
    closed: Callable[[], bool],
    batch: int = UPGRADE_BATCH,
) -> int:
    """Re-encode the records below the current version, ``batch`` at a time under ``hold()``;
    returns how many were re-encoded in place (an embedded store's segments are left to its
    build). Stops when ``closed()`` says so; waits for room when the disk is short."""
    done = 0
    started = time.perf_counter()
    while not closed():
        try:
            with hold():
                count = store.reencode_lexical(lexical.reencode, LEXICAL_VERSION, batch)
        except InsufficientStorage:
            time.sleep(RETRY_SECONDS)
            continue
        if not count:
            break
        done += count
    if done:
        log.info(
            "lexical vectors of %d memories re-encoded (version %d) in %.1fs",
            done,
            LEXICAL_VERSION,
            time.perf_counter() - started,
        )
    return done

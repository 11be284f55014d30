"""Embedded engine: Qdrant Edge shards under ``<root>/qdrant``, served by :class:`EdgeStore`.

Layout, recorded in ``manifest.json`` (written atomically, validated before it is trusted):

- ``active``: the shard every write goes to; it stays small, so brute-force search is fast.
- ``sealing``: at most one former active shard whose index is being built.
- ``segments``: indexed shards, and active shards that filled up while a build ran (set aside
  as they are until the next build merges them). They take deletes and payload updates in
  place, except those listed in ``merging``.
- ``merging``: segments being rebuilt together with the sealing shard (or on their own) into one
  segment of at most ``segment_max_points``.

The sealing shard and the merging segments are *frozen* while a child process builds them into
one indexed segment; deletes that reach them meanwhile are tombstones, replayed on the result.

Why not one shard: ``optimize()`` holds the GIL for a minute at 100k points, which would freeze
the daemon. With this layout the serving process never builds an index, and nothing written is
invisible at any moment: reads fan out over every shard and fuse the rankings.

Modules, by job:

- ``store.py``: ``EdgeStore``, the ``VectorStore`` facade over the others.
- ``layout.py``: the shards, their roles, the manifest and the directory (``manifest.py`` is the
  manifest's schema, ``shard.py`` the config of every shard; the manifest is replaced with
  ``clarity/atomic_file.py``).
- ``writes.py``: upserts, deletes and payload updates, with tombstones for frozen shards.
- ``schedule.py``: when to seal, merge and purge (why merge, and the purge, are told there).
- ``builder.py``: the build thread, the child process and the swap.
- ``child.py``: the child process that builds an indexed segment.
- ``reads.py``: fan-out reads over the shards and the fusion of their rankings (``EdgeStore``'s
  read methods).
"""

from clarity.store.edge.store import EdgeStore

__all__ = ["EdgeStore"]

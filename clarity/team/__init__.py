"""The team tier: shared project memory through a Clarity team server (docs/team.md).

- ``protocol``: what a daemon and the team server say to each other.
- The team server (``clarity serve --team``): ``serve`` runs ``server_app``, whose writes go
  through ``writes`` (``rate``, ``audit``) into ``store``; ``backend`` picks its state: ``users``
  and ``state`` (sqlite, one process) or ``qdrant_state`` (shared by replicas on a Qdrant server).
- A developer's daemon: ``share`` decides what goes to the team and queues it in ``outbox``;
  ``sync`` sends the outbox and pulls the replica through ``client``.
"""

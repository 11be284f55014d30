"""Memories over their whole life, above the ``MemoryService`` door: the export file and
engine-to-engine copies (``transfer``), other tools' files brought in (``importers``), backups
and restores of a whole storage root (``backup``), and the size cap that evicts the oldest
(``retention``). The CLI and the daemon's REST routes call these; nothing below the service
imports them."""

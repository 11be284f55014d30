"""The names of this machine's loopback interface: one list for every "is this loopback?".

- ``clarity.daemon.check_bind``: a bind host outside this list needs a token.
- ``clarity.http.guard_rules.host_allowed``: bound to one of these, the daemon serves only
  requests whose Host header names one of these (DNS rebinding).
- ``clarity.integrations.claude_entries``: an ``http`` hook posting to one of these is Clarity's
  (with ``0.0.0.0`` added there, see ``LOCAL_HOOK_HOSTS``).

Names are written without brackets (``::1``): a URL's ``hostname`` and the Host rule strip an
IPv6 literal's brackets before comparing. The plugin's SessionStart script, which runs without
``clarity`` importable, keeps a copy (``plugin/scripts/session_start.py``); a test keeps the two
equal.
"""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

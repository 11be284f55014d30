#!/usr/bin/env python3
"""Old home of Clarity's command-hook client: runs ``clarity/hooks/command_client.py``.

Command hooks that ``clarity hooks install --type command`` wrote before the client moved run
``python -S <clarity>/mcp/hook_analyzer.py`` by absolute path from users' settings files; this
stub keeps them working until the next ``clarity hooks install`` rewrites them to the new path.
It imports the client from its directory, as a top-level module (so from its cached bytecode;
nothing else of ``clarity`` is imported), and runs it as a hook command: stdin, stdout, the exit
code and ``--help`` (which names the file run) are what the old file gave, and start-up is no
slower. A client that cannot be imported (a half-removed install) fails open like the client
itself: exit 0, no output.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hooks"))
try:
    import command_client
except BaseException:
    raise SystemExit(0) from None
command_client.script()

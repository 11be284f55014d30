"""The daemon's HTTP face: one Starlette app (``clarity.http.app.create_app``) serving MCP at /mcp,
REST at /api, Claude Code's hooks at /hooks, the dashboard, and health at /healthz and /readyz,
behind one request guard.

Nothing is imported here, so ``clarity.http.loopback`` stays cheap for the CLI and the daemon's
start-up code, which read it without building an app.
"""

"""The MCP tools (``server``) and the backend contract they run on (``backend``)."""

"""Clarity's wiring into other tools' files: Claude Code's settings and MCP configuration."""

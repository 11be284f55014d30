"""End-to-end tests that drive the real Claude Code CLI against a scripted model on loopback."""

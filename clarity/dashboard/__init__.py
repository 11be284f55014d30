"""The memory dashboard the daemon serves at ``/``: see docs/dashboard.md."""

from clarity.dashboard.views import Dashboard

__all__ = ["Dashboard"]

"""Progress bars for the phases, cheap enough to run beside a measurement."""

from __future__ import annotations

import time

from rich.progress import Progress, TaskID

REFRESH_INTERVAL = 0.2
"""Seconds between two redraws. The bars never refresh on a thread of their
own (rich's default): that thread would be counted in the idle CPU figure
and would compete with the servers for the interpreter."""


class PhaseProgress:
    """One bar per phase on a rich ``Progress`` built with
    ``auto_refresh=False``; redrawn at most every REFRESH_INTERVAL s."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.last_refresh = 0.0

    def start(self, description: str, total: float) -> None:
        """Show a new bar for a phase that does ``total`` units of work."""
        self.task = self.progress.add_task(description, total=total)
        self.refresh(force=True)

    def update(self, completed: float) -> None:
        """Set how much of the current phase is done."""
        if self.task is not None:
            self.progress.update(self.task, completed=completed)
            self.refresh(force=False)

    def refresh(self, force: bool) -> None:
        """Redraw if forced, or if the last redraw is old enough."""
        now = time.perf_counter()
        if force or now - self.last_refresh >= REFRESH_INTERVAL:
            self.progress.refresh()
            self.last_refresh = now

"""A run's transcript as the page fetches it: from a byte offset on, in pages, as the log grows.

One `LiveLog` per run keeps a `TranscriptReader` and the items read so far; each fetch first reads
what the harness appended since. The page asks for `offset` = the byte offset it got last time, so
it receives each item once, and a finished run's items are served from memory.
"""

from __future__ import annotations

import bisect
import threading
from pathlib import Path
from typing import Any

from ..transcript import ModelCall, TranscriptReader

PAGE_ITEMS = 400


class LiveLog:
    def __init__(self, run_dir: Path) -> None:
        self.reader = TranscriptReader(run_dir)
        self.items: list[dict[str, Any]] = []
        self.offsets: list[int] = []
        self._lock = threading.Lock()

    def page(self, offset: int, finished: bool) -> dict[str, Any]:
        """Items whose line starts at or after `offset`, at most PAGE_ITEMS of them. `finished`:
        the run will write no more, so a torn last line is shown rather than waited for."""
        with self._lock:
            before = self.reader.offset
            new = list(self.reader.read(final=finished or self.reader.ended))
            if self.reader.offset < before or (new and new[0].index == 0 and self.items):  # log replaced
                self.items, self.offsets = [], []
            for item in new:
                self.items.append(_shown(item))
                self.offsets.append(item.offset)
            start = bisect.bisect_left(self.offsets, offset)
            chunk = self.items[start:start + PAGE_ITEMS]
            more = start + PAGE_ITEMS < len(self.items)
            return {"items": chunk, "offset": self.offsets[start + PAGE_ITEMS] if more else self.reader.offset,
                    "more": more, "ended": self.reader.ended, "notice": self.reader.notice,
                    "log_version": self.reader.log_version}


def _shown(item: Any) -> dict[str, Any]:
    data = item.to_dict()
    if isinstance(item, ModelCall):
        data["event"] = {k: v for k, v in data["event"].items() if k != "input"}  # `new` and `kept` say it
    return data


class LiveLogs:
    """The LiveLog of each run a page has asked about."""

    def __init__(self) -> None:
        self._logs: dict[Path, LiveLog] = {}
        self._lock = threading.Lock()

    def of(self, run_dir: Path) -> LiveLog:
        with self._lock:
            log = self._logs.get(run_dir)
            if log is None:
                log = self._logs[run_dir] = LiveLog(run_dir)
            return log

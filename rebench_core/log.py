"""Diagnostics: structlog everywhere, to stderr and, during a run, into the run's `harness.log`.

stdout carries results only. Every diagnostic goes through `get_logger(__name__)`; the standard
library's `logging` (third-party libraries) and `warnings` are routed through the same handlers.
Only rebench's own records reach stderr (at `REBENCH_LOG_LEVEL`, default info): a library's
deprecation warning must not print over the live display. Everything, third-party included, goes
to the run's JSON-lines log, where a reader can find it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import structlog

LOG_FILE = "harness.log"
_OURS = ("rebench",)  # logger-name prefixes shown on stderr (rebench_core, rebench_plugins, ...)
_configured = False


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test runner or a display may replace it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _OnlyOurs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith(_OURS)


def _shared() -> list[Any]:
    import structlog

    return [structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name, structlog.processors.TimeStamper(fmt="iso", utc=True)]


def _stderr_line(logger: Any, method: str, event: dict[str, Any]) -> str:
    """One plain line: time, level, logger, message, then key=value pairs."""
    head = f"{event.pop('timestamp', '')} [{event.pop('level', method)}] {event.pop('logger', '')}: " \
           f"{event.pop('event', '')}"
    exc = event.pop("exception", None)
    tail = " ".join(f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}" for k, v in event.items())
    return " ".join(p for p in (head, tail) if p) + (f"\n{exc}" if exc else "")


def configure() -> None:
    """Set up logging once per process: on first use of a logger, or when a run starts. structlog
    (and what it imports) loads only then, so commands that log nothing never pay for it."""
    global _configured
    if _configured:
        return
    _configured = True
    import structlog

    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_shared(), structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    stderr = _CurrentStderr()
    stderr.setLevel(os.environ.get("REBENCH_LOG_LEVEL", "INFO").upper())
    stderr.addFilter(_OnlyOurs())
    stderr.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, _stderr_line],
        foreign_pre_chain=_shared()))
    root = logging.getLogger()
    root.addHandler(stderr)
    # Our own loggers record everything; third-party ones keep the root's WARNING (their debug
    # chatter would otherwise reach their own handlers too).
    for prefix in ("rebench", "rebench_core", "rebench_plugins", "rebench_scaffolds", "rebench_environments"):
        logging.getLogger(prefix).setLevel(logging.DEBUG)
    logging.captureWarnings(True)  # warnings.warn(...) becomes a record of logger "py.warnings"


@contextlib.contextmanager
def run_log(run_dir: Path, **bind: Any) -> Iterator[Path]:
    """While a run lasts, every record (third-party ones included) also goes, as JSON lines, to
    `run_dir/harness.log` (root-only), with `bind` (the run's id, say) on each line."""
    configure()
    import structlog

    path = Path(run_dir) / LOG_FILE
    handler = logging.FileHandler(path, encoding="utf-8")
    os.chmod(path, 0o600)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()],
        foreign_pre_chain=_shared()))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with structlog.contextvars.bound_contextvars(**bind):
            yield path
    finally:
        root.removeHandler(handler)
        handler.close()


class _Lazy:
    """A logger that configures logging and binds itself on its first call."""

    def __init__(self, name: str, bind: dict[str, Any]) -> None:
        self._name, self._bind = name, bind
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            configure()
            import structlog

            self._logger = structlog.get_logger(self._name, **self._bind)
        return getattr(self._logger, method)


def get_logger(name: str, **bind: Any) -> structlog.stdlib.BoundLogger:
    """The logger modules keep at import time (`log = get_logger(__name__)`); it costs nothing
    until it is used."""
    return _Lazy(name, bind)  # type: ignore[return-value]

"""The local executor: each run a process of this machine, `concurrency` at a time, GPUs handed out
per run from the environment's `resources` (through CUDA_VISIBLE_DEVICES)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from ..machine import missing_resources, this_machine
from ..study_board import StudyBoard
from ..study_run import Outcome, execute
from ..study_spec import StudyError
from . import RunOrder, report


class GpuPool:
    def __init__(self, count: int) -> None:
        self.free = list(range(count))
        self.changed = asyncio.Condition()

    async def take(self, n: int) -> list[int]:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.free) >= n)
            taken, self.free = self.free[:n], self.free[n:]
            return taken

    async def give(self, ids: list[int]) -> None:
        async with self.changed:
            self.free.extend(ids)
            self.changed.notify_all()


class LocalExecutor:
    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = concurrency
        self.interrupted = False

    def check(self, orders: list[RunOrder]) -> None:
        """Refuse a study a run of which this machine cannot take."""
        first = {(o.job.env, o.job.size): o for o in reversed(orders)}  # one check per environment and size
        for order in first.values():
            problems = missing_resources(order.resources)
            if problems:
                hint = " Try --size small, or --executor ray on a cluster that has it." if order.job.size != "small" else ""
                raise StudyError(f"this machine cannot run {order.job.env} at size {order.job.size}: "
                                 f"{'; '.join(problems)}.{hint}")

    def close(self) -> None:
        pass

    def run(self, orders: list[RunOrder], board: StudyBoard) -> dict[str, Outcome]:
        return asyncio.run(self._run(orders, board))

    async def _run(self, orders: list[RunOrder], board: StudyBoard) -> dict[str, Outcome]:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        pool = GpuPool(len(this_machine().gpus))
        slots = asyncio.Semaphore(self.concurrency)
        # One thread per concurrent run: each waits on its run process for the whole run.
        threads = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="study-run")
        outcomes: dict[str, Outcome] = {}

        def on_signal(signame: str) -> None:
            if not stop.is_set():
                self.interrupted = True
                board.line(f"{signame}: stopping every run (each ends `interrupted`; re-invoke to resume)")
                stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)

        async def one(order: RunOrder) -> None:
            board.pending(order.key, order.job.cell)
            async with slots:
                gpus = await pool.take(order.resources.gpus)
                try:
                    if stop.is_set():
                        outcomes[order.key] = Outcome("not started")
                    else:
                        board.started(order.key, order.job.cell)
                        env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(map(str, gpus)))

                        def progress(figures: dict, key: str = order.key) -> None:
                            loop.call_soon_threadsafe(board.progress, key, figures)

                        outcomes[order.key] = await loop.run_in_executor(
                            threads, lambda: execute(order.config, order.log, env=env, on_progress=progress,
                                                     stop=stop.is_set))
                finally:
                    await pool.give(gpus)
            report(board, order, outcomes[order.key])

        try:
            await asyncio.gather(*(one(order) for order in orders))
        finally:
            threads.shutdown(wait=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return outcomes

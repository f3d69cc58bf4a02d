"""chexmask._pool.OrderedPool: results in order, a dead worker is a clear error, workers end with their owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from chexmask import ChexmaskError
from chexmask._lifeline import _running
from chexmask._pool import OrderedPool


@pytest.mark.parametrize("workers", [0, 2])
def test_results_come_back_in_submission_order(workers):
    with OrderedPool(workers) as pool:
        assert list(pool.ordered(pow, ((i, 2) for i in range(20)), lookahead=3)) == [i * i for i in range(20)]
        assert pool.submit(divmod, 7, 2).result() == (3, 1)


def test_a_dead_worker_is_a_chexmask_error_saying_what_to_do():
    with pytest.raises(ChexmaskError, match=r"a worker process died \(killed, or out of memory\?\); rerun with fewer"):
        with OrderedPool(1, died="rerun with fewer --workers") as pool:
            list(pool.ordered(os._exit, [(3,)]))


OWNER = """
import os, sys, time
from chexmask._pool import OrderedPool
with OrderedPool(2) as pool:
    pids = {pool.submit(os.getpid).result() for _ in range(8)}
    print(" ".join(map(str, pids)), flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the lifeline watches /proc or a pidfd")
def test_workers_end_when_their_owner_is_killed():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert workers and all(_running(p) for p in workers)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 10
        while any(_running(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(p) for p in workers)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()

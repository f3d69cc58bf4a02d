"""Worker processes that end soon after the process that started them, however it ends.

A pool worker waits on its task queue; when the main process is killed (``kill -9``, the
OOM killer) nothing closes that queue, because every worker holds both of its ends.
With the ``forkserver`` start method the fork server and the resource tracker then
stay too: both wait for the workers (each worker holds their pipes). So each worker
watches the main process itself and exits when it is gone; the fork server and the
resource tracker follow as their last client goes.

A parent-death signal (``prctl(PR_SET_PDEATHSIG)``) does not cover this: a fork
server's worker is the child of the fork server, which outlives the main process for
as long as the worker does.
"""

from __future__ import annotations

import os
import select
import threading
import time

__all__ = ["exit_with"]

#: Exit status of a worker whose main process went away.
ORPHAN_EXIT = 70


def exit_with(pid: int, *, poll_s: float = 0.5) -> None:
    """End this process (``os._exit``) soon after process ``pid`` has ended.

    Call it in a pool's worker initializer with the main process's pid. It starts a
    daemon thread that waits on a pidfd of ``pid`` (Linux 5.3+: woken the moment the
    process exits, before it is reaped) or, where there is none, checks every
    ``poll_s`` seconds whether ``pid`` still runs (a zombie does not).

    Parameters
    ----------
    pid : int
        The process to follow, usually the pool owner's ``os.getpid()``.
    poll_s : float, optional
        Seconds between checks when there is no pidfd.
    """
    if pid == os.getpid():
        return
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, other OS), or pid already gone
        fd = None
        if not _running(pid):
            os._exit(ORPHAN_EXIT)
    threading.Thread(target=_watch, args=(pid, fd, poll_s), name="chexmask-lifeline", daemon=True).start()


def _watch(pid: int, fd: int | None, poll_s: float) -> None:
    if fd is not None:
        select.select([fd], [], [])  # readable once the process has exited
    else:
        while _running(pid):
            time.sleep(poll_s)
    os._exit(ORPHAN_EXIT)


def _running(pid: int) -> bool:
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            return False
        return stat[stat.rindex(")") + 2] not in "ZX"  # zombie or dead: it has exited
    # No /proc: ask the kernel (a zombie still counts as running here).
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

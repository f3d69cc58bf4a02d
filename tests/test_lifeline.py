"""chexmask._lifeline: a worker ends soon after the process it follows, pidfd or polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from chexmask._lifeline import ORPHAN_EXIT, _running, exit_with

FOLLOWER = """
import os, sys, time
if sys.argv[2] == "poll":
    del os.pidfd_open  # as on kernels and systems without pidfds
from chexmask._lifeline import exit_with
exit_with(int(sys.argv[1]), poll_s=0.05)
print("following", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pidfd and /proc are Linux")
@pytest.mark.parametrize("how", ["pidfd", "poll"])
def test_follower_exits_when_the_followed_process_is_killed(how):
    followed = subprocess.Popen(["sleep", "60"])
    follower = subprocess.Popen([sys.executable, "-c", FOLLOWER, str(followed.pid), how], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline() == "following\n"
        followed.kill()  # not reaped yet: a zombie has ended too
        assert follower.wait(timeout=10) == ORPHAN_EXIT
    finally:
        for proc in (follower, followed):
            proc.kill()
            proc.wait()
        follower.stdout.close()


def test_running_and_following_oneself():
    assert _running(os.getpid())
    done = subprocess.Popen(["true"])
    while _running(done.pid):  # exited, then a zombie until reaped: not running
        time.sleep(0.01)
    done.wait()
    assert not _running(done.pid)
    exit_with(os.getpid())  # a no-op: the caller is the followed process

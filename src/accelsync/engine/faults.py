"""Named points where a crash-safety test can stop a run, to kill it there from outside.

`ACCELSYNC_PAUSE_AT=<point>:<marker file>` makes the first process that reaches `<point>` create
the marker file and then hang; the test waits for the marker and kills the whole run with
SIGKILL, the way `kill -9`, an OOM kill or a lost machine ends a run. Points:

    read     a source partition yielded its first batch (which the target has written)
    write    a write task wrote its first batch, before it flushed
    synced   the sync stage is done, the gate has not started
    publish  the target is live, the source position (offsets, watermark, ledger) not yet saved

Unset (always, outside tests), a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time

_VARIABLE = "ACCELSYNC_PAUSE_AT"


def pause_point(name: str) -> None:
    setting = os.environ.get(_VARIABLE)
    if not setting:
        return
    point, _, marker = setting.partition(":")
    if point != name or not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # the first process only
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    while True:
        time.sleep(3600)

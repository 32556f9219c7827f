"""A pseudo-terminal standing in for a USB-serial reader (reference section 5).

`PtyPort` opens a pty pair with both ends raw (or the line discipline would rewrite 0A/0D inside
frames). The code under test opens `path`, which is a symlink like /dev/serial/by-id/...: `unplug`
closes both ends (reads on the agent side then fail like a pulled USB cable) and `replug` opens a
fresh pty and re-points the symlink, as udev does for a replugged reader.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path


class PtyPort:
    def __init__(self, link: Path):
        self.link = link
        self.master_fd = -1
        self.slave_fd = -1
        self.received = bytearray()
        self.replug()

    def replug(self) -> None:
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.master_fd)
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        tmp = self.link.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(self.slave_fd))
        tmp.replace(self.link)

    def unplug(self) -> None:
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master_fd = self.slave_fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master_fd, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def drain(self) -> bytes:
        """Bytes the agent wrote (commands), accumulated in `received`."""
        out = bytearray()
        while self.master_fd >= 0:
            try:
                chunk = os.read(self.master_fd, 4096)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            out += chunk
        self.received += out
        return bytes(out)

    def close(self) -> None:
        self.unplug()

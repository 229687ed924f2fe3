"""The pool directory's renames of concurrent adoptions, sent as one OSD operation.

Every rename of an image writes the pool's one `rbd_directory` object (the `rbd` class's
`dir_rename_image`), so a batch's renames queue on one placement group, ≈ 1 ms of the
OSD's time each however many are in flight (docs/benchmarks.md, issue 15). Here the calls
that arrive while one is on the wire wait for it and then go together, as the
`dir_rename_image` calls of one write operation: the OSD applies an operation's calls in
one transaction, all or none, so each image's directory entry is moved or not exactly as
by its own call. A call alone is sent at once (nothing waits for company).

If the operation is refused (one of its renames names an entry the directory does not
hold, or a name it holds), nothing was written: its calls are sent again one by one, so
each caller gets its own answer. Any other failure (a timeout: the OSD may or may not have
applied it) is every caller's, as it would have been for each alone.
"""

from __future__ import annotations

import errno
import threading
from dataclasses import dataclass, field
from typing import Any

RBD_DIRECTORY = "rbd_directory"
MOST_AT_ONCE = 64  # renames in one operation: the OSD's transaction stays small
REFUSALS = (errno.ENOENT, errno.EEXIST, errno.ESTALE)  # one rename's answer, not the OSD's


def encoded(text: str) -> bytes:
    """A Ceph-encoded string: its length (32 bits, little-endian), then its bytes."""
    data = text.encode()
    return len(data).to_bytes(4, "little") + data


def rename_call(source: str, dest: str, image_id: str) -> bytes:
    """`dir_rename_image`'s input."""
    return encoded(source) + encoded(dest) + encoded(image_id)


@dataclass(eq=False)
class _Rename:
    data: bytes
    woken: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: BaseException | None = None


class DirectoryRenames:
    """`dir_rename_image` on one pool's directory, from any number of threads."""

    def __init__(self, ioctx: Any, rados: Any) -> None:
        self._ioctx = ioctx
        self._rados = rados  # the bindings' module: its WriteOpCtx
        self._lock = threading.Lock()
        self._queue: list[_Rename] = []
        self._sending = False
        self.operations = 0  # OSD operations sent (tests and benchmarks read it)

    def rename(self, source: str, dest: str, image_id: str) -> None:
        """Move the directory's entry `source` → `dest` of image `image_id`; raises the
        bindings' error as `ioctx.execute` would (ObjectNotFound, ObjectExists, ESTALE …).

        The caller that finds nothing on the wire sends; the others queue, and when an
        operation ends the first still queued sends the next one, for all queued then."""
        mine = _Rename(rename_call(source, dest, image_id))
        with self._lock:
            self._queue.append(mine)
            lead = not self._sending
            self._sending = True
        if not lead:
            mine.woken.wait()  # its result, or its turn to send (it is first in the queue)
        if not mine.done:
            with self._lock:
                group = self._queue[:MOST_AT_ONCE]
                del self._queue[:MOST_AT_ONCE]
            try:
                self._send(group)
            finally:
                with self._lock:
                    following = self._queue[0] if self._queue else None
                    self._sending = following is not None
                if following is not None:
                    following.woken.set()
        if mine.error is not None:
            raise mine.error

    def _send(self, group: list[_Rename]) -> None:
        """Send `group` as one operation and give each member its answer."""
        try:
            if len(group) == 1:
                errors = [self._alone(group[0])]
            else:
                try:
                    self._together(group)
                    errors = [None] * len(group)
                except self._rados.Error as err:
                    if errno_of(err) not in REFUSALS:
                        raise
                    errors = [self._alone(each) for each in group]  # nothing was written
        except BaseException as err:  # the OSD's failure (or this thread's): everyone's
            errors = [err] * len(group)
        for each, error in zip(group, errors, strict=True):
            each.error, each.done = error, True
            each.woken.set()

    def _together(self, group: list[_Rename]) -> None:
        with self._rados.WriteOpCtx() as op:
            for each in group:
                op.execute("rbd", "dir_rename_image", each.data)
            self.operations += 1
            self._ioctx.operate_write_op(op, RBD_DIRECTORY)

    def _alone(self, one: _Rename) -> BaseException | None:
        self.operations += 1
        try:
            self._ioctx.execute(RBD_DIRECTORY, "rbd", "dir_rename_image", one.data)
        except self._rados.Error as err:
            error: BaseException = err
            return error
        return None


def errno_of(err: Exception) -> int | None:
    """The errno of a rados error (the bindings keep it positive)."""
    code = getattr(err, "errno", None)
    return abs(code) if isinstance(code, int) else None

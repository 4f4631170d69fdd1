"""Which segment ids a client has handled: plain bookkeeping, no bus (the input method's composer uses it too)."""

from __future__ import annotations


class SeenIds:
    """Which segment ids a client has already handled: every id above ``floor`` once, in whatever order.

    Bounded: the newest ``keep`` ids are remembered; older ones count as seen.
    """

    def __init__(self, floor: int = 0, keep: int = 10_000):
        self.floor = floor
        self._ids: set[int] = set()
        self._order: list[int] = []
        self._keep = keep

    def __contains__(self, seg_id: int) -> bool:
        """Whether ``seg_id`` was handled already (asking does not remember it)."""
        return seg_id <= self.floor or seg_id in self._ids

    def first_time(self, seg_id: int) -> bool:
        """True the first time ``seg_id`` (above the floor) is seen; it is remembered."""
        if seg_id in self:
            return False
        self._ids.add(seg_id)
        self._order.append(seg_id)
        if len(self._order) > self._keep:
            oldest = self._order[: len(self._order) - self._keep]
            del self._order[: len(oldest)]
            self._ids.difference_update(oldest)
            self.floor = max(self.floor, max(oldest))
        return True

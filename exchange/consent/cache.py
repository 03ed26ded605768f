"""The consent decision's inputs, kept per Consent version in each process.

Every document read decides consent afresh over the patient's Consents as they stood
(`consent.md`). Reading and parsing each Consent's resource on every read was a seventh of
a read's server time (bench/profiles/api-load.md); the decision itself is cheap. A stored
version never changes once committed (`resource_version` is keyed by type, id and
version), so the parsed record of (Consent id, version) can be kept: a read still asks the
database which versions are current — one index probe returning three columns — and so
sees a new version or a withdrawal committed by any worker at once. Only what another
transaction committed is kept: a session that wrote a Consent version itself marks
itself (`mark_written`), and its reads neither fill nor use the cache, since a version it
saw could still be rolled back and its number reused.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Final

from sqlalchemy.orm import Session

from exchange.consent.records import ConsentRecord

#: Records kept per process: a few per child, for the children read most recently.
CAPACITY: Final = 8192
_WRITTEN: Final = "exchange.consent_written"


class RecordCache:
    """A bounded least-recently-used map of (Consent id, version) to its parsed record."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._records: OrderedDict[tuple[uuid.UUID, int], ConsentRecord] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[uuid.UUID, int]) -> ConsentRecord | None:
        """The record kept for `key`, if any."""
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                self._records.move_to_end(key)
            return record

    def put(self, key: tuple[uuid.UUID, int], record: ConsentRecord) -> None:
        """Keep `record`, dropping the least recently used beyond capacity."""
        with self._lock:
            self._records[key] = record
            self._records.move_to_end(key)
            while len(self._records) > self._capacity:
                self._records.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._records.clear()


RECORDS: Final = RecordCache()


def mark_written(session: Session) -> None:
    """Note that `session` stored a Consent version: its reads bypass the cache."""
    session.info[_WRITTEN] = True


def usable(session: Session) -> bool:
    """Whether `session` may read and fill the cache (it wrote no Consent version)."""
    return not session.info.get(_WRITTEN, False)

"""ODS codes: how organisations (NHS bodies, and local authorities too) are identified."""

from __future__ import annotations

import re
from typing import Final

#: 2-16 ASCII capitals and digits, the whole string.
ODS_CODE: Final = re.compile(r"[A-Z0-9]{2,16}")


def is_ods_code(value: str) -> bool:
    """Whether `value` is an ODS code: 2-16 ASCII capitals and digits, nothing else."""
    return ODS_CODE.fullmatch(value) is not None

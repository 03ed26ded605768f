"""NHS numbers: 10 digits, the last a Modulus 11 check digit (NHS Data Dictionary)."""

from __future__ import annotations

import re
from typing import Final

#: Ten ASCII digits, the whole string: `\d` would take fullwidth or Arabic-Indic digits and
#: `$` a trailing newline, each a way to register one child twice.
_TEN_DIGITS: Final = re.compile(r"[0-9]{10}")


def is_valid_nhs_number(value: str) -> bool:
    """Whether `value` is ten digits with a valid Modulus 11 check digit.

    Weights 10..2 over the first nine digits; check = 11 - (sum mod 11), 11 becomes 0,
    and 10 means the number can never be valid.
    """
    if not _TEN_DIGITS.fullmatch(value):
        return False
    total = sum(
        int(digit) * weight for digit, weight in zip(value[:9], range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(value[9])


def mask(nhs_number: str) -> str:
    """An NHS number with all but the last three digits hidden, for operator output."""
    return "*******" + nhs_number[-3:]

"""Time-based one-time passwords (RFC 6238) for the console's second factor, with pyotp.

A code is accepted for the time step before, at and after now (clocks drift by seconds,
people type slowly), and only once: a step at or before the last one accepted is refused,
so a code seen over a shoulder cannot be replayed within its window (RFC 6238 s.5.2).
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Final

import pyotp

#: Seconds per time step (RFC 6238's default, which every authenticator app uses).
STEP_SECONDS: Final = 30
ISSUER: Final = "SEND health-advice exchange"


def new_secret() -> str:
    """A new random base32 secret (160 bits, RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    """The `otpauth://` URI an authenticator app reads from the enrolment QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step `code` is valid for (one step either side of `now`), or None; never a
    step at or before `last_step`."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def code_at(secret: str, moment: datetime) -> str:
    """The code for `moment` (what an authenticator app shows then)."""
    return pyotp.TOTP(secret).at(moment)

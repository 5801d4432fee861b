"""HMAC-SHA256 signatures of batches, clock-skew window, and replay memory.

The agent signs the whole message (header + body) with its sensor's key and sends the
signature in ``X-Portradar-Signature`` with its key's owner in ``X-Portradar-Sensor``.
The collector recomputes it with the stored key and compares in constant time
(:func:`hmac.compare_digest`).  The header carries the send time and a fresh nonce: a
message older or newer than :data:`SKEW_SECONDS` is refused, and a (sensor, nonce) pair
seen within the window is a replay (remembered in the store, ``collector_nonces``, so a
restarted collector still refuses it).  The scheme is the one of AWS SigV4 and of
webhook signing (Stripe, GitHub): HMAC over the body plus a timestamp, 300 s tolerance.

>>> key = new_key()
>>> sig = sign(key, b"message")
>>> verify(key, b"message", sig), verify(key, b"messagE", sig)
(True, False)
>>> within_skew(1000.0, now=1200.0), within_skew(1000.0, now=1400.0)
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: Tolerated difference between the sender's clock and ours; Stripe's webhook default
#: (300 s), which NTP-less hosts stay within for days.
SKEW_SECONDS = 300.0
#: Key length in bytes (SHA-256 block-size keys are overkill; 32 is RFC 2104's L).
KEY_BYTES = 32


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(key: bytes, message: bytes, signature: str) -> bool:
    """Constant-time comparison of ``signature`` with the message's true one."""
    return hmac.compare_digest(sign(key, message), signature.strip().lower())


def within_skew(ts: float, *, now: float, window: float = SKEW_SECONDS) -> bool:
    return abs(now - ts) <= window

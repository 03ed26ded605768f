"""Streaming AEAD encrypt+decrypt against one-shot AES-256-GCM of the same bytes with
`cryptography`, in one run (`quality.md`: >= 0.8)."""

from __future__ import annotations

import os
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange.crypto.aead import decrypt_stream, encrypt_stream

SIZE = 256 * 1024 * 1024
PIECE = 1024 * 1024
ROUNDS = 3


def _best(run: object) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    """Print the AEAD row of the benchmark table (MiB/s, encrypt then decrypt)."""
    data = os.urandom(SIZE)
    key = os.urandom(32)
    view = memoryview(data)

    def streaming() -> None:
        pieces = (bytes(view[i : i + PIECE]) for i in range(0, SIZE, PIECE))
        ciphertext = encrypt_stream(key, "bench-object", pieces)
        for _ in decrypt_stream(key, "bench-object", ciphertext):
            pass

    def one_shot() -> None:
        aead, nonce = AESGCM(key), os.urandom(12)
        aead.decrypt(nonce, aead.encrypt(nonce, data, b"bench-object"), b"bench-object")

    mib = SIZE / 1024 / 1024
    measured, baseline = mib / _best(streaming), mib / _best(one_shot)
    print(
        f"{'streaming AEAD vs one-shot AES-GCM (MiB/s)':<48} {measured:>14.0f} {baseline:>14.0f} "
        f"{measured / baseline:>7.2f} {'>=0.8':>7}"
    )


if __name__ == "__main__":
    main()

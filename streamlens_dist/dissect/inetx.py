"""iNET-X (PROTOCOLS.md §4): the header check of ladder rule 3b (docs/DECISIONS.md), between
IENA and the transport fallbacks.

The 28-byte big-endian header: control word, stream ID, sequence number, packet length
(header included), PTP seconds, PTP nanoseconds, packet information field. A UDP payload is
iNET-X when it holds a whole header, the control word is 0x11000000, the packet length is
the UDP payload length and the nanoseconds are below 10^9. There is no malformed-payload name
for it: a payload that fails the test is simply not iNET-X.
"""

from __future__ import annotations

HEADER_LEN = 28
CONTROL_WORD = b"\x11\x00\x00\x00"
NS_PER_S = 1_000_000_000


def detect(p: bytes) -> bool:
    n = len(p)
    return n >= HEADER_LEN and p[0:4] == CONTROL_WORD and \
        int.from_bytes(p[12:16], "big") == n and int.from_bytes(p[20:24], "big") < NS_PER_S

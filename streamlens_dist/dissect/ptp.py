"""IEEE 1588 PTPv2 message names (PROTOCOLS.md §2.3, §2.6)."""

from __future__ import annotations

NAMES = {0x0: "Sync", 0x1: "Delay_Req", 0x2: "Pdelay_Req", 0x3: "Pdelay_Resp",
         0x8: "Follow_Up", 0x9: "Delay_Resp", 0xA: "Pdelay_Resp_Follow_Up", 0xB: "Announce",
         0xC: "Signaling", 0xD: "Management"}
FRAME_TYPES = {t: "PTP-" + n for t, n in NAMES.items()}


def detect(p: bytes) -> str | None:
    """Frame type of a PTPv2 message (the caller has checked port or ethertype), else None."""
    if len(p) < 34 or p[1] & 0x0F != 2:
        return None
    mlen = int.from_bytes(p[2:4], "big")
    if not 34 <= mlen <= len(p):
        return None
    return FRAME_TYPES.get(p[0] & 0x0F, "PTP-Unknown")


def malformed(p: bytes, whole: bool) -> bool:
    """Is a message that `detect` refused (on a PTP port or ethertype) broken, rather than
    PTPv1 (a valid older protocol, PROTOCOLS.md §2.5) or a message the capture cut short?

    `whole`: the bytes are the complete message (a UDP datagram whose length field fits the
    captured bytes); for an L2 frame that is unknown, so a messageLength beyond the captured
    bytes, which a snap length can cause, is not called malformed there.
    """
    if len(p) >= 34 and p[1] & 0x0F == 1:
        return False
    if len(p) < 34 or p[1] & 0x0F != 2:
        return True  # shorter than any PTP header, or neither version 1 nor 2
    mlen = int.from_bytes(p[2:4], "big")
    return mlen < 34 or whole

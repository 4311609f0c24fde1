"""Integer codes for frame types, protocol hints and malformed-payload names.

The columnar path works on small integers per frame; both paths name things through these
tables so that a code always means the same string.
"""

from __future__ import annotations

from .ptp import NAMES as _PTP_NAMES

TYPE_NAMES: tuple[str, ...] = (
    "CH10-Data", "TMATS",
    *("PTP-" + n for n in _PTP_NAMES.values()), "PTP-Unknown",
    "IENA-P", "IENA-D", "IENA-N", "IENA-M", "IENA-Q", "IENA-Unknown", "INETX",
    "DNS", "DHCP", "NTP", "UDP", "HTTP", "HTTPS", "TCP", "ICMP", "IGMP", "IP-Fragment",
    "ARP", "OTHER",
)
TYPE_ID = {n: i for i, n in enumerate(TYPE_NAMES)}

HINT_NAMES: tuple[str, ...] = (
    "CH10", "TMATS", "PTP", "IENA", "DHCP", "DNS", "NTP", "SNMP", "TFTP", "HTTP", "HTTPS",
    "SSH", "Telnet", "FTP", "SMTP", "POP3", "IMAP", "UDP", "TCP", "IGMP", "ICMP", "Multicast",
    "INETX",
)
HINT_BIT = {n: 1 << i for i, n in enumerate(HINT_NAMES)}

# Appended only: a code is an index into this tuple (partials count per code).
MALFORMED_NAMES: tuple[str, ...] = ("CH10-header-checksum", "IP-header", "CH10-length",
                                    "CH10-header", "PTP-header", "IENA-size")
MALFORMED_ID = {n: i for i, n in enumerate(MALFORMED_NAMES)}


def hint_bits(hints: tuple[str, ...]) -> int:
    bits = 0
    for h in hints:
        bits |= HINT_BIT[h]
    return bits


def hint_names(bits: int) -> set[str]:
    return {n for n, b in HINT_BIT.items() if bits & b}

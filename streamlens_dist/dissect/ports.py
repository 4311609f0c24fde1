"""Port tables: frame-type names (ladder step 4) and per-flow protocol hints (CONTRACT §3)."""

from __future__ import annotations

UDP_TYPES = {53: "DNS", 67: "DHCP", 68: "DHCP", 123: "NTP"}
TCP_TYPES = {80: "HTTP", 443: "HTTPS"}

UDP_HINTS = {67: "DHCP", 68: "DHCP", 53: "DNS", 123: "NTP", 161: "SNMP", 162: "SNMP",
             69: "TFTP", 319: "PTP", 320: "PTP", 50000: "IENA", 50001: "IENA"}
TCP_HINTS = {80: "HTTP", 443: "HTTPS", 22: "SSH", 23: "Telnet", 21: "FTP", 25: "SMTP",
             110: "POP3", 143: "IMAP"}
PTP_PORTS = frozenset((319, 320))


def by_port(table: dict[int, str], sport: int, dport: int) -> str | None:
    """The name either port maps to; when both map to different names the lower port wins
    (it is the well-known one, e.g. a DHCP reply from 67 to 68)."""
    a, b = table.get(sport), table.get(dport)
    if a is None:
        return b
    if b is None or a == b:
        return a
    return a if sport < dport else b

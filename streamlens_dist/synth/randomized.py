"""Random record mixes for property tests: many frame kinds, few flows, unruly timestamps."""

from __future__ import annotations

import random
from collections.abc import Callable

from streamlens_dist.synth.ch10 import (
    ch10_tmats_udp,
    ch10_udp,
    tmats_text,
)
from streamlens_dist.synth.frames import (
    ETH_ARP,
    ETH_IPV6,
    ETH_PTP,
    arp,
    default_mac,
    ether,
    host_mac,
    icmp_echo,
    igmp,
    ip_frame,
    ipv4_fragments,
    ipv6,
    ipv6_fragment_header,
    tcp,
    udp,
    udp_frame,
)
from streamlens_dist.synth.payloads import (
    dhcp_discover,
    dns_query,
    dns_response,
    iena,
    inetx,
    ntp,
    ptp,
)

__all__ = ["MAX_PCAP_NS", "random_records"]

MAX_PCAP_NS = (1 << 32) * 10**9 - 1  # last instant a pcap record header can hold

Flow = tuple[str, str, str, list[tuple[int, int]]]  # kind, src, dst, vlans
Maker = Callable[[random.Random, Flow], list[bytes]]


def _vlans(rng: random.Random) -> list[tuple[int, int]]:
    tags = [[], [], [(0x8100, rng.randrange(1, 4095))],
            [(0x88A8, rng.randrange(1, 4095)), (0x8100, rng.randrange(1, 4095))]]
    return rng.choice(tags)


def _flow(rng: random.Random) -> Flow:
    kind = rng.choice(["ip4", "ip4", "ip4", "ip6", "l2"])
    if kind == "ip4":
        dst = rng.choice([f"10.0.{rng.randrange(4)}.{rng.randrange(1, 255)}", "224.0.1.129",
                          f"239.1.0.{rng.randrange(1, 255)}", "10.0.0.255"])
        return kind, f"10.0.{rng.randrange(4)}.{rng.randrange(1, 255)}", dst, _vlans(rng)
    if kind == "ip6":
        dst = rng.choice([f"fd00::{rng.randrange(1, 0xFFFF):x}", "ff0e::181", "ff02::fb"])
        return kind, f"fd00::{rng.randrange(1, 0xFFFF):x}", dst, _vlans(rng)
    src = "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))
    dst = rng.choice(["01:1b:19:00:00:00", "01:80:c2:00:00:0e", "ff:ff:ff:ff:ff:ff",
                      "02:00:00:00:00:" + f"{rng.randrange(256):02x}"])
    return kind, src, dst, _vlans(rng)


def _udp(flow: Flow, sport: int, dport: int, payload: bytes) -> list[bytes]:
    _, src, dst, vlans = flow
    return [udp_frame(src, dst, sport, dport, payload, vlans=vlans)]


def _ch10(rng: random.Random, flow: Flow) -> list[bytes]:
    fmt = rng.choice([1, 2, 3])
    body = rng.randbytes(rng.randrange(4, 300))
    seg = fmt != 3 and rng.random() < 0.2
    payload = ch10_udp(
        fmt, rng.choice([0x09, 0x11, 0x19, 0x38, 0x68, rng.randrange(256)]),
        rng.randrange(1, 0x10000), rng.randrange(1 << 24), body,
        secondary_header=rng.random() < 0.3, bad_checksum=rng.random() < 0.1, segmented=seg,
        segment_offset=4 * rng.randrange(8) if seg else 0, rtc=rng.getrandbits(48),
    )
    return _udp(flow, rng.randrange(1024, 65536), rng.choice([8010, 8011, 50000]), payload)


def _tmats(rng: random.Random, flow: Flow) -> list[bytes]:
    text = tmats_text(f"PROG{rng.randrange(100)}", channels=rng.randrange(1, 5))
    return _udp(flow, 8010, 8010, ch10_tmats_udp(text, fmt=rng.choice([1, 2, 3])))


def _ptp(rng: random.Random, flow: Flow) -> list[bytes]:
    msg = ptp(rng.randrange(16), seq=rng.randrange(1 << 16), version=rng.choice([2, 2, 2, 1]),
              domain=rng.randrange(4), origin_ns=rng.randrange(1 << 62))
    if flow[0] == "l2":
        return [ether(flow[2], flow[1], ETH_PTP, msg, flow[3])]
    port = rng.choice([319, 320])
    return _udp(flow, rng.choice([port, rng.randrange(1024, 65536)]), port, msg)


def _iena(rng: random.Random, flow: Flow) -> list[bytes]:
    ptype = rng.choice("PDNMQ")
    status = rng.randrange(256) if rng.random() < 0.2 else None
    trailer = 0xDEAD if rng.random() < 0.9 else rng.randrange(1 << 16)
    payload = iena(rng.randrange(1 << 16), ptype, rng.randrange(1 << 16), rng.randrange(1, 20),
                   key_status=status, trailer=trailer, words=rng.randrange(1, 8),
                   time_us=rng.randrange(366 * 86400 * 10**6))
    return _udp(flow, 50000, rng.choice([50000, 50001, 5547]), payload)


def _inetx(rng: random.Random, flow: Flow) -> list[bytes]:
    """A valid iNET-X packet, or now and then a near miss of the ladder's test (PROTOCOLS.md
    §4): control word, packet length or nanoseconds off, or a header cut short."""
    ns = rng.choice([0, 999_999_999, rng.randrange(10**9)])
    payload = inetx(rng.randrange(1 << 32), rng.randrange(1 << 32),
                    rng.randbytes(rng.choice([0, 1, 64, rng.randrange(200)])),
                    ptp_ns=rng.randrange(1 << 32) * 10**9 + ns,
                    pif=rng.choice([0, 1 << 31, 1 << 26, rng.getrandbits(32)]))
    r = rng.random()
    if r < 0.08:
        payload = rng.choice([0x11000001, 0x10000000, 0x00000011, 0x11000000 ^ (1 << rng.randrange(32)),
                              rng.getrandbits(32)]).to_bytes(4, "big") + payload[4:]
    elif r < 0.16:
        length = len(payload) + rng.choice([-1, 1, -28, 4, 1 << 16, -len(payload)])
        payload = payload[:12] + (length % (1 << 32)).to_bytes(4, "big") + payload[16:]
    elif r < 0.24:
        ns = rng.choice([10**9, 10**9 + 1, 0xFFFFFFFF, rng.randrange(10**9, 1 << 32)])
        payload = payload[:20] + ns.to_bytes(4, "big") + payload[24:]
    elif r < 0.28:
        payload = payload[:rng.randrange(28)]  # header cut short (its length field is stale)
    port = rng.choice([6000, 6000, 1023, 8010, 53, 319, 320, 50000, rng.randrange(1, 65536)])
    return _udp(flow, rng.choice([port, rng.randrange(1024, 65536)]), port, payload)


def _it(rng: random.Random, flow: Flow) -> list[bytes]:
    kind = rng.randrange(4)
    if kind == 0:
        return _udp(flow, rng.randrange(1024, 65536), 53, dns_query("a.example", ident=7))
    if kind == 1:
        return _udp(flow, 53, rng.randrange(1024, 65536), dns_response("a.example", b"\1\2\3\4"))
    if kind == 2:
        return _udp(flow, 123, 123, ntp(rng.choice([3, 4]), transmit_ns=rng.randrange(1 << 62)))
    return _udp(flow, 68, 67, dhcp_discover(rng.randbytes(6), rng.randrange(1 << 32)))


def _plain_udp(rng: random.Random, flow: Flow) -> list[bytes]:
    payload = rng.randbytes(rng.randrange(0, 200))
    return _udp(flow, rng.randrange(1, 65536), rng.randrange(1, 65536), payload)


def _tcp(rng: random.Random, flow: Flow) -> list[bytes]:
    port = rng.choice([80, 443, 22, rng.randrange(1, 65536)])
    seg = tcp(rng.randrange(1024, 65536), port, rng.randbytes(rng.randrange(0, 100)),
              rng.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04]), seq=rng.getrandbits(32))
    _, src, dst, vlans = flow
    return [ip_frame(src, dst, 6, seg, vlans=vlans)]


def _icmp(rng: random.Random, flow: Flow) -> list[bytes]:
    kind, src, dst, vlans = flow
    if kind == "ip4" and rng.random() < 0.3:
        return [ip_frame(src, dst, 2, igmp(rng.choice(["239.1.0.1", "224.0.1.129"])),
                         vlans=vlans, ttl=1)]
    msg = icmp_echo(rng.randrange(1 << 16), rng.randrange(1 << 16), rng.randbytes(16),
                    reply=rng.random() < 0.5, v6=kind == "ip6")
    return [ip_frame(src, dst, 58 if kind == "ip6" else 1, msg, vlans=vlans)]


def _fragments(rng: random.Random, flow: Flow) -> list[bytes]:
    kind, src, dst, vlans = flow
    dgram = udp(rng.randrange(1024, 65536), rng.choice([8010, 50000, 5004]),
                rng.randbytes(rng.randrange(1500, 4000)))
    ident = rng.randrange(1 << 16)
    smac, dmac = host_mac(src), default_mac(dst)
    if kind == "ip4":
        return [ether(dmac, smac, 0x0800, f, vlans) for f in ipv4_fragments(src, dst, dgram,
                                                                             ident=ident)]
    frames = []
    for off in range(0, len(dgram), 1448):
        ext = [ipv6_fragment_header(off, off + 1448 < len(dgram), ident)]
        frames.append(ether(dmac, smac, ETH_IPV6, ipv6(src, dst, 17, dgram[off : off + 1448], ext),
                            vlans))
    return frames


def _l2(rng: random.Random, flow: Flow) -> list[bytes]:
    _, src, dst, vlans = flow
    if rng.random() < 0.5:
        ips = [f"10.0.0.{rng.randrange(1, 255)}" for _ in range(2)]
        return [ether(dst, src, ETH_ARP, arp(rng.choice([1, 2]), src, ips[0], dst, ips[1]), vlans)]
    return [ether(dst, src, rng.choice([0x88CC, 0x88B5, 0x9000]), rng.randbytes(46), vlans)]


_IP_MAKERS: list[Maker] = [_ch10, _ch10, _tmats, _ptp, _iena, _iena, _inetx, _it, _plain_udp,
                           _tcp, _icmp, _fragments]
_L2_MAKERS: list[Maker] = [_ptp, _ptp, _l2]


def _junk(rng: random.Random, frames: list[bytes]) -> list[bytes]:
    """Damage a frame now and then: truncation or random bytes (undecodable traffic)."""
    r = rng.random()
    if r < 0.04:
        return [f[: rng.randrange(len(f) + 1)] for f in frames]
    if r < 0.06:
        return [rng.randbytes(rng.randrange(0, 64))]
    return frames


def _next_ts(rng: random.Random, t: int, res: int) -> int:
    r = rng.random()
    if r < 0.6:
        t += rng.randrange(1, 20_000_000)
    elif r < 0.75:
        pass  # equal timestamps
    elif r < 0.87:
        t -= rng.randrange(1, 5_000_000)
    elif r < 0.95:
        t += rng.choice([1, -1]) * rng.randrange(10**12, 10**15)  # huge jump
    else:
        t = rng.randrange(MAX_PCAP_NS)
    t = min(max(t, 0), MAX_PCAP_NS)
    return t - t % res


def random_records(
    rng: random.Random, n: int, *, resolution_ns: int = 1000
) -> list[tuple[int, bytes]]:
    """``n`` random ``(ts_ns, frame)`` records over a handful of random flows.

    Frames mix every builder of this package (incl. fragments, VLAN/QinQ tags, bad
    checksums, truncated and random bytes); timestamps are multiples of ``resolution_ns``
    in ``[0, MAX_PCAP_NS]`` and may repeat, go backwards or jump by days.
    """
    flows = [_flow(rng) for _ in range(rng.randrange(1, 6))]
    t = rng.randrange(0, 2_000_000_000) * 10**9
    t -= t % resolution_ns
    out: list[tuple[int, bytes]] = []
    while len(out) < n:
        flow = rng.choice(flows)
        maker = rng.choice(_L2_MAKERS if flow[0] == "l2" else _IP_MAKERS)
        for frame in _junk(rng, maker(rng, flow))[: n - len(out)]:
            t = _next_ts(rng, t, resolution_ns)
            out.append((t, frame))
    return out

"""The streams of the flight-test scenario, declared as data: address plan, rate, builder.

A builder maps (period index k, event time t, rng) to a burst of ``(offset_ns, frame)``.
"""

from __future__ import annotations

import datetime as dt
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from streamlens_dist.synth.ch10 import (
    ch10_tmats_udp,
    ch10_udp,
    tmats_text,
)
from streamlens_dist.synth.frames import (
    ETH_ARP,
    ETH_PTP,
    arp,
    ether,
    host_mac,
    icmp_echo,
    igmp,
    ip_frame,
    ipv4_fragments,
    tcp,
    udp,
    udp_frame,
)
from streamlens_dist.synth.payloads import (
    dhcp_discover,
    dns_query,
    dns_response,
    http_request,
    http_response,
    iena,
    inetx,
    ntp,
    ptp,
)

__all__ = ["StreamSpec", "flight_test_streams"]

Burst = list[tuple[int, bytes]]
Builder = Callable[[int, int, random.Random], Burst]

MS = 1_000_000
US = 1_000
TAI_OFFSET_NS = 37 * 10**9

REC1, GRP1 = "192.168.28.10", "239.28.0.1"
# TMATS goes to its own setup group: on GRP1 its transfer counter would interleave with the
# PCM stream's, which a recorder numbering one datagram series per socket never does
GRP_SETUP = "239.28.0.9"
REC2, GRP2 = "192.168.28.11", "239.28.0.2"
REC3 = "192.168.28.12"
GM, SLAVE, PTP_GRP = "192.168.28.1", "192.168.28.50", "224.0.1.129"
DAU_IENA, DAU_INETX = "192.168.28.20", "192.168.28.21"
GS, DNS_SRV, WEB, SSH = "192.168.28.100", "192.168.28.2", "192.168.28.30", "192.168.28.31"
VIDEO_SRC, VIDEO_DST = "192.168.28.40", "192.168.28.101"
V6_A, V6_B = "fe80::10", "fe80::20"
PTP_L2_SRC, PTP_L2_DST, GPTP_DST = "00:1b:19:00:00:02", "01:1b:19:00:00:00", "01:80:c2:00:00:0e"
ROUTER_ALERT = b"\x94\x04\x00\x00"


@dataclass(frozen=True)
class StreamSpec:
    """A scenario stream; ``period_ns`` is the mean interval when ``poisson`` is set."""

    name: str
    src: str
    dst: str
    kind: str
    frame_types: tuple[str, ...]
    period_ns: int
    build: Builder
    poisson: bool = False
    gaps: bool = False


def _one(frame: bytes) -> Burst:
    return [(0, frame)]


def _tcp_session(k: int, rng: random.Random) -> Burst:
    """An HTTP exchange: handshake, GET, segmented response, ACKs, close."""
    cp, c, s = 49152 + k % 16384, GS, WEB
    cs, ss = rng.getrandbits(32), rng.getrandbits(32)

    def seg(fwd: bool, flags: int, sq: int, ack: int, data: bytes = b"") -> bytes:
        a, b, sp, dp = (c, s, cp, 80) if fwd else (s, c, 80, cp)
        return ip_frame(a, b, 6, tcp(sp, dp, data, flags, seq=sq, ack=ack), dont_fragment=True)

    req = http_request("web.local", f"/status/{k}")
    resp = http_response(b"x" * rng.randrange(100, 4000))
    out = [(0, seg(True, 0x02, cs, 0)), (150 * US, seg(False, 0x12, ss, cs + 1)),
           (300 * US, seg(True, 0x10, cs + 1, ss + 1)),
           (320 * US, seg(True, 0x18, cs + 1, ss + 1, req))]
    c_next, s_next = cs + 1 + len(req), ss + 1
    for i in range(0, len(resp), 1460):
        out.append((1500 * US + i // 1460 * 15 * US,
                    seg(False, 0x18, s_next + i, c_next, resp[i : i + 1460])))
    s_next += len(resp)
    end = out[-1][0]
    out += [(end + 100 * US, seg(True, 0x10, c_next, s_next)),
            (end + 200 * US, seg(True, 0x11, c_next, s_next)),
            (end + 350 * US, seg(False, 0x11, s_next, c_next + 1)),
            (end + 450 * US, seg(True, 0x10, c_next + 1, s_next + 1))]
    return out


def flight_test_streams(rng: random.Random, start_ns: int) -> list[StreamSpec]:
    """The scenario's streams; ``rng`` seeds the fixed data blob (consumed identically)."""
    blob = rng.randbytes(4096)
    year0 = dt.datetime(dt.datetime.fromtimestamp(start_ns // 10**9, dt.UTC).year, 1, 1,
                        tzinfo=dt.UTC)
    year0_ns = int(year0.timestamp()) * 10**9
    text = tmats_text()

    def rtc(t: int) -> int:
        return (t - start_ns) // 100 + 0x1_0000_0000

    def data(k: int, n: int) -> bytes:
        off = (k * 37) % 2048
        return blob[off : off + n]

    def pcm(k: int, t: int, r: random.Random) -> Burst:
        body = struct.pack("<I", 0) + data(k, 256)
        return _one(udp_frame(REC1, GRP1, 8010, 8010, ch10_udp(1, 0x09, 3, k, body, rtc=rtc(t)),
                              ident=k))

    def tmats(k: int, t: int, r: random.Random) -> Burst:
        return _one(udp_frame(REC1, GRP_SETUP, 8010, 8010, ch10_tmats_udp(text, seq=k), ident=k))

    def bus1553(k: int, t: int, r: random.Random) -> Burst:
        body = struct.pack("<I", 4) + data(k, 4 * 46)
        payload = ch10_udp(3, 0x19, 5, k, body, secondary_header=True, time_ns=t + TAI_OFFSET_NS,
                           rtc=rtc(t))
        return _one(udp_frame(REC2, GRP2, 8011, 8011, payload))

    def eth_f0(k: int, t: int, r: random.Random) -> Burst:
        vlans = [(0x88A8, 200), (0x8100, 20)]
        big = k % 10 == 0
        body = struct.pack("<I", 1) + data(k, 1800 if big else 180)
        if not big:
            p = ch10_udp(2, 0x68, 7, k, body, rtc=rtc(t))
            return _one(udp_frame(REC3, GS, 8020, 8020, p, vlans=vlans))
        first = ch10_udp(2, 0x68, 7, k, body, rtc=rtc(t), segmented=True, segment_size=1200)
        rest = ch10_udp(2, 0x68, 7, k, body, rtc=rtc(t), segmented=True, segment_offset=1200)
        return [(0, udp_frame(REC3, GS, 8020, 8020, first, vlans=vlans)),
                (15 * US, udp_frame(REC3, GS, 8020, 8020, rest, vlans=vlans))]

    def ptp_udp(kind: str) -> Builder:
        def build(k: int, t: int, r: random.Random) -> Burst:
            if kind == "sync":
                return [(0, udp_frame(GM, PTP_GRP, 319, 319, ptp(0x0, seq=k, origin_ns=t))),
                        (48 * US, udp_frame(GM, PTP_GRP, 320, 320, ptp(0x8, seq=k, origin_ns=t)))]
            if kind == "announce":
                return _one(udp_frame(GM, PTP_GRP, 320, 320, ptp(0xB, seq=k, origin_ns=t)))
            req = ptp(0x1, seq=k, clock_identity=bytes.fromhex("001b19fffe000050"))
            return [(0, udp_frame(SLAVE, PTP_GRP, 319, 319, req)),
                    (150 * US, udp_frame(GM, PTP_GRP, 320, 320, ptp(0x9, seq=k, origin_ns=t)))]
        return build

    def ptp_l2(k: int, t: int, r: random.Random) -> Burst:
        vl = [(0x8100, 10)]
        return [(0, ether(PTP_L2_DST, PTP_L2_SRC, ETH_PTP, ptp(0x0, seq=k, origin_ns=t), vl)),
                (40 * US, ether(PTP_L2_DST, PTP_L2_SRC, ETH_PTP, ptp(0x8, seq=k, origin_ns=t), vl))]

    def ptp_l2_announce(k: int, t: int, r: random.Random) -> Burst:
        return _one(ether(PTP_L2_DST, PTP_L2_SRC, ETH_PTP, ptp(0xB, seq=k), [(0x8100, 10)]))

    def gptp(k: int, t: int, r: random.Random) -> Burst:
        peer = "00:1b:19:00:00:03"
        return [(0, ether(GPTP_DST, PTP_L2_SRC, ETH_PTP, ptp(0x2, seq=k, sdo_id=1))),
                (30 * US, ether(GPTP_DST, peer, ETH_PTP, ptp(0x3, seq=k, sdo_id=1))),
                (60 * US, ether(GPTP_DST, peer, ETH_PTP, ptp(0xA, seq=k, sdo_id=1)))]

    def iena_stream(key: int, ptype: str, dst: str, dport: int, n: int, words: int) -> Builder:
        def build(k: int, t: int, r: random.Random) -> Burst:
            p = iena(key, ptype, k, n, words=words, time_us=(t - year0_ns) // 1000)
            return _one(udp_frame(DAU_IENA, dst, 50000, dport, p, ident=k))
        return build

    def inetx_stream(sid: int, dst: str, port: int, size: int, vlans: list[tuple[int, int]]
                     ) -> Builder:
        def build(k: int, t: int, r: random.Random) -> Burst:
            p = inetx(sid, k, data(k, size), ptp_ns=t + TAI_OFFSET_NS)
            return _one(udp_frame(DAU_INETX, dst, port, port, p, vlans=vlans))
        return build

    def dns(k: int, t: int, r: random.Random) -> Burst:
        name, sp = f"host{k % 50}.fti.local", 40000 + k % 1000
        ans = dns_response(name, bytes([192, 168, 28, 150 + k % 50]), ident=k & 0xFFFF)
        return [(0, udp_frame(GS, DNS_SRV, sp, 53, dns_query(name, ident=k & 0xFFFF))),
                (400 * US, udp_frame(DNS_SRV, GS, 53, sp, ans))]

    def ntp_pair(k: int, t: int, r: random.Random) -> Burst:
        return [(0, udp_frame(GS, DNS_SRV, 123, 123, ntp(3, transmit_ns=t))),
                (300 * US, udp_frame(DNS_SRV, GS, 123, 123, ntp(4, transmit_ns=t, stratum=2)))]

    def ssh(k: int, t: int, r: random.Random) -> Burst:
        cseq, sseq = k * 48, (k // 2) * 64  # the server answers every other keystroke
        out = [(0, ip_frame(GS, SSH, 6, tcp(50022, 22, data(k, 48), 0x18, seq=cseq, ack=sseq)))]
        if k % 2:
            seg = tcp(22, 50022, data(k, 64), 0x18, seq=sseq, ack=cseq + 48)
            out.append((800 * US, ip_frame(SSH, GS, 6, seg)))
        return out

    def arp_pair(k: int, t: int, r: random.Random) -> Burst:
        target = f"192.168.28.{150 + k % 50}"
        me, them = host_mac(GS), host_mac(target)
        return [(0, ether("ff:ff:ff:ff:ff:ff", me, ETH_ARP, arp(1, me, GS, b"\0" * 6, target))),
                (90 * US, ether(me, them, ETH_ARP, arp(2, them, target, me, GS)))]

    def ping(k: int, t: int, r: random.Random) -> Burst:
        pay = data(k, 56)
        return [(0, ip_frame(GS, REC1, 1, icmp_echo(7, k, pay))),
                (200 * US, ip_frame(REC1, GS, 1, icmp_echo(7, k, pay, reply=True)))]

    def igmp_report(k: int, t: int, r: random.Random) -> Burst:
        return _one(ip_frame(SLAVE, GRP1, 2, igmp(GRP1), ttl=1, options=ROUTER_ALERT))

    def dhcp(k: int, t: int, r: random.Random) -> Burst:
        mac = bytes.fromhex("02aabbcc00") + bytes([k & 0xFF])
        return _one(udp_frame("0.0.0.0", "255.255.255.255", 68, 67, dhcp_discover(mac, k),
                              src_mac=mac, dst_mac="ff:ff:ff:ff:ff:ff"))

    def v6_ping(k: int, t: int, r: random.Random) -> Burst:
        return [(0, ip_frame(V6_A, V6_B, 58, icmp_echo(9, k, data(k, 32), v6=True))),
                (120 * US, ip_frame(V6_B, V6_A, 58, icmp_echo(9, k, data(k, 32), reply=True,
                                                              v6=True)))]

    def mdns(k: int, t: int, r: random.Random) -> Burst:
        query = dns_query(f"_ch10-{k % 8}._udp.local", qtype=12)
        return _one(udp_frame(V6_A, "ff02::fb", 5353, 5353, query, hop_limit=255))

    def mld(k: int, t: int, r: random.Random) -> Burst:
        record = struct.pack(">BBH", 4, 0, 0) + bytes.fromhex("ff0200000000000000000000000000fb")
        report = struct.pack(">BBHHH", 143, 0, 0, 0, 1) + record
        hop_by_hop = (0, b"\x05\x02\x00\x00")  # router alert option
        return _one(ip_frame(V6_B, "ff02::16", 58, report, ext_headers=[hop_by_hop], hop_limit=1))

    def fragmented(k: int, t: int, r: random.Random) -> Burst:
        dgram = udp(5004, 5004, (blob * 2)[: r.randrange(3000, 6000)])
        frags = ipv4_fragments(VIDEO_SRC, VIDEO_DST, dgram, ident=k & 0xFFFF)
        src_mac, dst_mac = host_mac(VIDEO_SRC), host_mac(VIDEO_DST)
        return [(i * 12 * US, ether(dst_mac, src_mac, 0x0800, f)) for i, f in enumerate(frags)]

    S = StreamSpec
    return [
        S("ch10-pcm", REC1, GRP1, "ip4", ("CH10-Data",), 10 * MS, pcm, gaps=True),
        S("tmats", REC1, GRP_SETUP, "ip4", ("TMATS",), 1000 * MS, tmats),
        S("ch10-1553", REC2, GRP2, "ip4", ("CH10-Data",), 20 * MS, bus1553, gaps=True),
        S("ch10-eth", REC3, GS, "ip4", ("CH10-Data", "UDP"), 50 * MS, eth_f0),
        S("ptp-sync", GM, PTP_GRP, "ip4", ("PTP-Sync", "PTP-Follow_Up"), 1000 * MS,
          ptp_udp("sync")),
        S("ptp-announce", GM, PTP_GRP, "ip4", ("PTP-Announce",), 1000 * MS, ptp_udp("announce")),
        S("ptp-delay", SLAVE, PTP_GRP, "ip4", ("PTP-Delay_Req", "PTP-Delay_Resp"), 1000 * MS,
          ptp_udp("delay")),
        S("ptp-l2", PTP_L2_SRC, PTP_L2_DST, "l2", ("PTP-Sync", "PTP-Follow_Up"), 1000 * MS,
          ptp_l2),
        S("ptp-l2-announce", PTP_L2_SRC, PTP_L2_DST, "l2", ("PTP-Announce",), 2000 * MS,
          ptp_l2_announce),
        S("gptp-pdelay", PTP_L2_SRC, GPTP_DST, "l2",
          ("PTP-Pdelay_Req", "PTP-Pdelay_Resp", "PTP-Pdelay_Resp_Follow_Up"), 1000 * MS, gptp),
        S("iena-n", DAU_IENA, "235.0.0.1", "ip4", ("IENA-N",), 100 * MS,
          iena_stream(0x001A, "N", "235.0.0.1", 50000, 40, 1), gaps=True),
        S("iena-d", DAU_IENA, "235.0.0.2", "ip4", ("IENA-D",), 50 * MS,
          iena_stream(0x0020, "D", "235.0.0.2", 50001, 24, 2), gaps=True),
        S("iena-m", DAU_IENA, "235.0.0.3", "ip4", ("IENA-M",), 200 * MS,
          iena_stream(0x0030, "M", "235.0.0.3", 50000, 6, 1), gaps=True),
        S("iena-p", DAU_IENA, "235.0.0.4", "ip4", ("IENA-P",), 500 * MS,
          iena_stream(0x0040, "P", "235.0.0.4", 50000, 200, 1)),
        S("iena-q", DAU_IENA, "235.0.0.5", "ip4", ("IENA-Q",), 1000 * MS,
          iena_stream(0x0050, "Q", "235.0.0.5", 50000, 4, 1)),
        S("inetx-a", DAU_INETX, "235.0.1.1", "ip4", ("INETX",), 20 * MS,
          inetx_stream(0x0A, "235.0.1.1", 6000, 128, []), gaps=True),
        S("inetx-b", DAU_INETX, "235.0.1.2", "ip4", ("INETX",), 40 * MS,
          inetx_stream(0x0B, "235.0.1.2", 6001, 64, [(0x8100, 100)]), gaps=True),
        S("icmp", GS, REC1, "ip4", ("ICMP",), 1000 * MS, ping),
        S("dns", GS, DNS_SRV, "ip4", ("DNS",), 2000 * MS, dns, poisson=True),
        S("ntp", GS, DNS_SRV, "ip4", ("NTP",), 16000 * MS, ntp_pair, poisson=True),
        S("http", GS, WEB, "ip4", ("HTTP",), 5000 * MS,
          lambda k, t, r: _tcp_session(k, r), poisson=True),
        S("ssh", GS, SSH, "ip4", ("TCP",), 500 * MS, ssh, poisson=True),
        S("arp", host_mac(GS), "ff:ff:ff:ff:ff:ff", "l2", ("ARP",), 10000 * MS, arp_pair,
          poisson=True),
        S("igmp", SLAVE, GRP1, "ip4", ("IGMP",), 20000 * MS, igmp_report, poisson=True),
        S("dhcp", "0.0.0.0", "255.255.255.255", "ip4", ("DHCP",), 60000 * MS, dhcp,
          poisson=True),
        S("ipv6-icmp", V6_A, V6_B, "ip6", ("ICMP",), 2000 * MS, v6_ping, poisson=True),
        S("ipv6-mdns", V6_A, "ff02::fb", "ip6", ("UDP",), 5000 * MS, mdns, poisson=True),
        S("ipv6-mld", V6_B, "ff02::16", "ip6", ("ICMP",), 30000 * MS, mld, poisson=True),
        S("fragmented", VIDEO_SRC, VIDEO_DST, "ip4", ("UDP", "IP-Fragment"), 2000 * MS,
          fragmented, poisson=True),
    ]

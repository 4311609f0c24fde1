"""Independent protocol decoders for the stream cross-check (issue 5, docs/STREAMS.md).

Nothing here uses streamlens_dist/ nor dpkt: every protocol field comes from a third-party
decoder, and this module only groups the decoded messages into the streams of STREAMS.md §1
and §3 (flow, protocol, id1..id4):

- IENA: AcraNetwork's `IENA` class (header, size check, 0xDEAD trailer), per key;
- iNET-X: AcraNetwork's `iNetX` class, per stream ID;
- Chapter 10 over UDP (ch10udp_*.pcap): AcraNetwork's `Chapter10UDP` (transfer header) and
  `Chapter11` (packet header) classes: the transfer sequence per flow and format, the packet
  sequence per (channel ID, data type), the TMATS texts;
- Chapter 10 recordings (ch10files/*.c10): pychapter10 reads the packets;
  `c10_to_pcap` wraps them in UDP Format 1 full-packet datagrams (some holding 2 or 3
  packets) so the engine can analyse them, and AcraNetwork decodes the transfer headers
  back from the written pcap;
- PTP: tshark's PTP dissector (fields ptp.v2.*).

The pcaps are read with AcraNetwork's `Pcap` and `SimpleEthernet` classes (all the FTI
captures are little-endian microsecond pcaps of Ethernet frames); the UDP payload is cut to
the UDP length field, which drops the 4-byte trailer (a frame check sequence) that
PROVENANCE.md lists for several AcraNetwork files.

What the libraries cannot decode is listed, never guessed (`Decoded.not_decoded`):

- AcraNetwork 1.3.15 `Chapter10UDP.unpack` raises "No Supported" for a Format 1 segmented
  transfer header (ch10udp_f1_full_and_segmented.pcap frame 2). The library's own layout for
  that header (`Chapter10UDP.CH10_UDP_SEG_HEADER_FORMAT1`, the dead code after its raise) is
  used to read the sequence number and segment offset instead; such frames are also listed
  in `Decoded.fallback` so a test can tell them apart.
- AcraNetwork `Chapter11.unpack` refuses a secondary header with IRIG 106 Chapter 4 time
  (no real capture has one); such a datagram's remaining packets are listed as not decoded.
- AcraNetwork `IENA.unpack` rejects a size field that does not match the datagram
  (corrupt_iena_d_bad_length.pcap, all 3 frames): no IENA message, as for the engine.
- pychapter10 stops at a packet cut by the end of the file (sample_tmats_1553_arinc_video.c10,
  the 100th packet): `c10_to_pcap` writes only whole packets, so both sides see 99.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from AcraNetwork.IENA import IENA
from AcraNetwork.iNetX import iNetX
from AcraNetwork.IRIG106.Chapter10.Chapter10UDP import Chapter10UDP
from AcraNetwork.IRIG106.Chapter11 import Chapter11
from AcraNetwork.Pcap import Pcap
from AcraNetwork.SimpleEthernet import IP, UDP, Ethernet
from chapter10 import C10
from chapter10.computer import ComputerF1

CAPTURES = Path(__file__).resolve().parent / "captures"
C10_FILES = CAPTURES / "ch10files"

FlowKey = tuple[str, str, str]  # (src, dst, kind) as in the flows/ table
StreamKey = tuple[FlowKey, str, tuple[int, int, int, int]]  # (flow, protocol, ids)

# PROTOCOLS.md §2.3 message names (STREAMS §3 `stream` text); other types are `type N`.
PTP_NAMES = {0x0: "Sync", 0x1: "Delay_Req", 0x2: "Pdelay_Req", 0x3: "Pdelay_Resp",
             0x8: "Follow_Up", 0x9: "Delay_Resp", 0xA: "Pdelay_Resp_Follow_Up",
             0xB: "Announce", 0xC: "Signaling", 0xD: "Management"}


@dataclass(frozen=True)
class Msg:
    """One message: frame number, capture timestamp, raw sequence number, bytes (STREAMS §1
    table), error flag (STREAMS §3 `errors`), IENA key status << 8 | N2 status (else -1), and
    whether it is a Chapter 10 segment continuation (its transfer sequence number repeats its
    packet's, so STREAMS §2 leaves it out of the accounting)."""
    frame: int
    ts_ns: int
    seq: int
    nbytes: int
    error: bool = False
    status: int = -1
    continuation: bool = False


@dataclass
class Stream:
    flow: FlowKey
    protocol: str
    ids: tuple[int, int, int, int]
    seq_bits: int
    text: str  # STREAMS §3 `stream` column
    messages: list[Msg] = field(default_factory=list)
    segments: int = 0  # CH10-UDP: first segments + continuations

    @property
    def key(self) -> StreamKey:
        return (self.flow, self.protocol, self.ids)

    def seqs(self) -> list[tuple[int, int]]:
        """[(frame number, sequence number)] in message order."""
        return [(m.frame, m.seq) for m in self.messages]

    @property
    def bytes(self) -> int:
        return sum(m.nbytes for m in self.messages)


@dataclass(frozen=True)
class Tmats:
    flow: FlowKey
    frame: int
    ts_ns: int
    channel_id: int
    text: str


@dataclass(frozen=True)
class PtpMsg:
    """One PTP message as tshark dissects it."""
    flow: FlowKey
    frame: int
    ts_ns: int
    msgtype: int
    domain: int
    clock: int  # clockIdentity, unsigned 64-bit
    port: int
    seq: int
    length: int
    two_step: bool
    grandmaster: int | None  # Announce only


@dataclass
class Decoded:
    capture: str
    protocols: frozenset[str]  # the protocols this decoder speaks for
    streams: dict[StreamKey, Stream] = field(default_factory=dict)
    not_decoded: list[tuple[int, str]] = field(default_factory=list)  # (frame, why)
    fallback: list[int] = field(default_factory=list)  # frames read with a documented fallback
    tmats: list[Tmats] = field(default_factory=list)
    ptp: list[PtpMsg] = field(default_factory=list)

    def add(self, flow: FlowKey, protocol: str, ids: tuple[int, int, int, int], bits: int,
            text: str, msg: Msg) -> Stream:
        key = (flow, protocol, ids)
        st = self.streams.get(key)
        if st is None:
            st = self.streams[key] = Stream(flow, protocol, ids, bits, text)
        st.messages.append(msg)
        return st

    def by_protocol(self, protocol: str) -> list[Stream]:
        return [s for s in self.streams.values() if s.protocol == protocol]

    def messages(self, protocol: str) -> int:
        return sum(len(s.messages) for s in self.by_protocol(protocol))


@contextlib.contextmanager
def _quiet_acranetwork() -> Iterator[None]:
    """AcraNetwork logs every checksum mismatch at ERROR level (47 of the 48 frames of
    ch10udp_f1_arinc429_random_hdrs.pcap): silence it while decoding."""
    log = logging.getLogger("AcraNetwork")
    old = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(old)


# ---------------------------------------------------------------------------------------
# pcap reading with AcraNetwork

@dataclass(frozen=True)
class UdpFrame:
    frame: int
    ts_ns: int
    flow: FlowKey
    payload: bytes  # cut to the UDP length field


def udp_frames(path: str | Path) -> Iterator[UdpFrame]:
    """Every IPv4/UDP frame of a little-endian microsecond Ethernet pcap, read with AcraNetwork."""
    with Pcap(str(path)) as pcap:
        if pcap.magic != 0xA1B2C3D4 or pcap.network != 1:
            raise ValueError(f"{path}: not a little-endian microsecond Ethernet pcap")
        for number, rec in enumerate(pcap, 1):
            eth = Ethernet()
            eth.unpack(rec.payload)
            if eth.type != Ethernet.TYPE_IP:
                continue
            ip = IP()
            ip.unpack(eth.payload, verify_checksum=False)
            if ip.protocol != 17 or ip.fragment_offset:
                continue
            udp = UDP()
            udp.unpack(ip.payload)
            payload = udp.payload
            if 8 <= udp.len <= len(udp.payload) + 8:
                payload = udp.payload[:udp.len - 8]
            ts = rec.sec * 1_000_000_000 + rec.usec * 1000
            yield UdpFrame(number, ts, (ip.srcip, ip.dstip, "ip4"), payload)


# ---------------------------------------------------------------------------------------
# IENA and iNET-X

def decode_iena(path: str | Path) -> Decoded:
    """Per key: every datagram AcraNetwork's IENA class accepts (size field == datagram) with
    the 0xDEAD trailer."""
    out = Decoded(Path(path).name, frozenset({"IENA"}))
    for f in udp_frames(path):
        pkt = IENA()
        try:
            pkt.unpack(f.payload)
        except Exception as exc:  # the library's own refusal, recorded
            out.not_decoded.append((f.frame, f"IENA: {exc}"))
            continue
        if pkt.endfield != 0xDEAD:
            out.not_decoded.append((f.frame, f"IENA: end field {pkt.endfield:#06x}"))
            continue
        status = (pkt.keystatus << 8) | pkt.status
        out.add(f.flow, "IENA", (pkt.key, 0, 0, 0), 16, f"key 0x{pkt.key:04x}",
                Msg(f.frame, f.ts_ns, pkt.sequence, len(f.payload), status=status))
    return out


def decode_inetx(path: str | Path) -> Decoded:
    """Per stream ID: every datagram AcraNetwork's iNetX class accepts (length field ==
    datagram) with the default control word."""
    out = Decoded(Path(path).name, frozenset({"INETX"}))
    for f in udp_frames(path):
        pkt = iNetX()
        try:
            pkt.unpack(f.payload)
        except Exception as exc:
            out.not_decoded.append((f.frame, f"iNetX: {exc}"))
            continue
        if pkt.inetxcontrol != iNetX.DEF_CONTROL_WORD:
            out.not_decoded.append((f.frame, f"iNetX: control word {pkt.inetxcontrol:#x}"))
            continue
        error = bool(pkt.pif & (1 << 31) or pkt.pif & (1 << 26))
        out.add(f.flow, "INETX", (pkt.streamid, 0, 0, 0), 32, f"stream 0x{pkt.streamid:08x}",
                Msg(f.frame, f.ts_ns, pkt.sequence, len(f.payload), error=error))
    return out


# ---------------------------------------------------------------------------------------
# Chapter 10 over UDP with AcraNetwork

def _transfer_header(payload: bytes) -> tuple[Chapter10UDP, bool]:
    """AcraNetwork's decode of a transfer header; (header, used_fallback)."""
    t = Chapter10UDP()
    try:
        t.unpack(payload)
        return t, False
    except Exception as exc:
        # 1.3.15 raises "No Supported" for Format 1 segmented headers; read them with the
        # library's own layout (`CH10_UDP_SEG_HEADER_FORMAT1` after the 4-byte base header).
        if str(exc) != "No Supported" or len(payload) < 12:
            raise
        t.channelID, t.channelsequence, _res, t.segmentoffset = struct.unpack_from(
            Chapter10UDP.CH10_UDP_SEG_HEADER_FORMAT1, payload,
            Chapter10UDP.CH10_UDP_HEADER_LENGTH)
        t.payload = payload[Chapter10UDP.CH10_UDP_HEADER_LENGTH
                            + Chapter10UDP.CH10_UDP_SEG_HEADER_LENGTH:]
        return t, True


def _ch10_udp_ids(t: Chapter10UDP) -> tuple[tuple[int, int, int, int], int, str]:
    if t.format == 3:
        return (3, t.sourceid, 0, 0), 32 - 4 * t.sourceid_len, f"fmt 3 src 0x{t.sourceid:x}"
    return (t.format, 0, 0, 0), 24, f"fmt {t.format}"


def _walk_packets(out: Decoded, f: UdpFrame, body: bytes, first_only: bool) -> None:
    """CH10 messages of one datagram body with AcraNetwork's Chapter11 class: packets back to
    back until the body ends, fewer than 24 bytes are left, no packet header is there, or a
    packet runs past the body (that one still counts, STREAMS §1.1)."""
    pos, count = 0, 0
    while len(body) - pos >= 24 and count < 4096:
        pkt = Chapter11()
        try:
            pkt.unpack(body[pos:])
        except Exception as exc:
            out.not_decoded.append((f.frame, f"Chapter11 at +{pos}: {exc}"))
            return
        hlen = 36 if pkt.has_secondary_header else 24
        if (pkt.syncpattern != Chapter11.SYNC_WORD or pkt.packetlen % 4 or pkt.packetlen < hlen
                or pkt.datalen > pkt.packetlen - hlen):
            return
        error = bool(pkt.packetflag & (Chapter11.PKT_FLAG_RTC_SYNC_ERROR
                                       | Chapter11.PKT_FLAG_DATA_OVERFLOW))
        out.add(f.flow, "CH10", (pkt.channelID, pkt.datatype, 0, 0), 8,
                f"ch 0x{pkt.channelID:04x} type 0x{pkt.datatype:02x}",
                Msg(f.frame, f.ts_ns, pkt.sequence, pkt.packetlen, error=error))
        whole = pos + pkt.packetlen <= len(body)
        if pkt.datatype == 0x01 and not first_only and whole:
            text = pkt.payload[4:pkt.datalen].decode("latin-1").rstrip("\x00")
            out.tmats.append(Tmats(f.flow, f.frame, f.ts_ns, pkt.channelID, text))
        count += 1
        if first_only or not whole:
            return
        pos += pkt.packetlen


def decode_ch10udp(path: str | Path, *, packets: bool = True) -> Decoded:
    """CH10-UDP streams (per flow and transfer format / Format 3 source ID) and, with
    `packets`, CH10 streams (per flow, channel ID and data type) and TMATS texts."""
    out = Decoded(Path(path).name, frozenset({"CH10", "CH10-UDP"} if packets else {"CH10-UDP"}))
    with _quiet_acranetwork():
        for f in udp_frames(path):
            try:
                t, fallback = _transfer_header(f.payload)
            except Exception as exc:
                out.not_decoded.append((f.frame, f"Chapter10UDP: {exc}"))
                continue
            if fallback:
                out.fallback.append(f.frame)
            ids, bits, text = _ch10_udp_ids(t)
            segmented = t.type == Chapter10UDP.TYPE_SEG and t.format in (1, 2)
            continuation = segmented and t.segmentoffset != 0
            st = out.add(f.flow, "CH10-UDP", ids, bits, text,
                         Msg(f.frame, f.ts_ns, t.sequence, len(f.payload),
                             continuation=continuation))
            if segmented:
                st.segments += 1
            if not packets or continuation:
                continue  # a segment continuation holds no packet header
            body = t.payload
            if t.format == 3 and t.offset_pkt_start:
                body = body[t.offset_pkt_start:]
            _walk_packets(out, f, body, first_only=segmented)
    return out


# ---------------------------------------------------------------------------------------
# Chapter 10 recordings: pcap writer and pychapter10

C10_FLOW: FlowKey = ("10.0.0.10", "239.1.0.1", "ip4")
C10_PORT = 6679
C10_FIRST_SEQ = 0xFFFFFD  # the 24-bit transfer sequence wraps after three datagrams
C10_BASE_NS = 1_600_000_000 * 10**9
C10_GROUPS = (1, 2, 3, 2)  # packets per datagram, cycled
MAX_UDP_PAYLOAD = 65507


def _ip_checksum(hdr: bytes) -> int:
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _udp_frame(payload: bytes, ident: int) -> bytes:
    src = ipaddress.IPv4Address(C10_FLOW[0]).packed
    dst = ipaddress.IPv4Address(C10_FLOW[1]).packed
    udp = struct.pack("!HHHH", C10_PORT, C10_PORT, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 32, 17, 0,
                     src, dst)
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    eth = bytes.fromhex("01005e010001" "020000000010" "0800")
    return eth + ip + udp


def c10_packet_spans(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every whole packet of a recording, by a plain header walk."""
    spans, pos = [], 0
    while len(data) - pos >= 24 and data[pos:pos + 2] == b"\x25\xeb":
        plen = struct.unpack_from("<I", data, pos + 4)[0]
        if plen < 24 or pos + plen > len(data):
            break  # the last packet of a truncated recording
        spans.append((pos, plen))
        pos += plen
    return spans


@dataclass(frozen=True)
class Datagram:
    frame: int
    ts_ns: int
    seq: int  # 24-bit transfer sequence number
    offsets: tuple[int, ...]  # file offsets of the packets it carries


def c10_to_pcap(c10_path: str | Path, pcap_path: str | Path, *,
                groups: tuple[int, ...] = C10_GROUPS, first_seq: int = C10_FIRST_SEQ,
                ) -> tuple[list[Datagram], dict[int, tuple[int, int]]]:
    """Write a pcap (LE, microseconds) of UDP Format 1 full-packet datagrams carrying the
    recording's packets, byte for byte: header 0x01 + 24-bit LE sequence number, then 1, 2
    or 3 consecutive packets (cycling through `groups`, fewer when they would not fit in
    one datagram). Returns the datagrams and {file offset of a packet: (frame, ts_ns)}."""
    data = Path(c10_path).read_bytes()
    spans = c10_packet_spans(data)
    datagrams: list[Datagram] = []
    placement: dict[int, tuple[int, int]] = {}
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    i = g = 0
    while i < len(spans):
        want = groups[g % len(groups)]
        g += 1
        take = [spans[i]]
        while len(take) < want and i + len(take) < len(spans) and \
                4 + sum(n for _, n in take) + spans[i + len(take)][1] <= MAX_UDP_PAYLOAD:
            take.append(spans[i + len(take)])
        i += len(take)
        frame = len(datagrams) + 1
        ts = C10_BASE_NS + frame * 1_000_000 + (frame * 37 % 11) * 1000  # µs resolution
        seq = (first_seq + frame - 1) & 0xFFFFFF
        payload = bytes([0x01]) + seq.to_bytes(3, "little") + b"".join(
            data[off:off + n] for off, n in take)
        raw = _udp_frame(payload, frame)
        records.append(struct.pack("<IIII", ts // 10**9, ts % 10**9 // 1000, len(raw), len(raw)))
        records.append(raw)
        datagrams.append(Datagram(frame, ts, seq, tuple(off for off, _ in take)))
        for off, _ in take:
            placement[off] = (frame, ts)
    Path(pcap_path).write_bytes(b"".join(records))
    return datagrams, placement


def decode_c10_recording(c10_path: str | Path, pcap_path: str | Path,
                         placement: dict[int, tuple[int, int]]) -> Decoded:
    """CH10 streams and TMATS texts from pychapter10 reading the recording (each packet
    placed in its datagram by `placement`), CH10-UDP streams from AcraNetwork reading the
    pcap that c10_to_pcap wrote."""
    out = decode_ch10udp(pcap_path, packets=False)
    out.capture = Path(c10_path).name
    out.protocols = frozenset({"CH10", "CH10-UDP"})
    with open(c10_path, "rb") as fh:
        reader = C10(fh)
        for pkt in reader:
            offset = reader.file.tell() - pkt.packet_length
            if offset not in placement:
                out.not_decoded.append((-1, f"pychapter10 packet at {offset} not in the pcap"))
                continue
            frame, ts = placement[offset]
            error = bool(pkt.rtc_sync_error or pkt.data_overflow_error)
            out.add(C10_FLOW, "CH10", (pkt.channel_id, pkt.data_type, 0, 0), 8,
                    f"ch 0x{pkt.channel_id:04x} type 0x{pkt.data_type:02x}",
                    Msg(frame, ts, pkt.sequence_number, pkt.packet_length, error=error))
            if pkt.data_type == 0x01:
                text = pkt.data.decode("latin-1").rstrip("\x00")
                out.tmats.append(Tmats(C10_FLOW, frame, ts, pkt.channel_id, text))
    # pychapter10 yields packets in file order; the streams want frame order (the same).
    for st in out.streams.values():
        st.messages.sort(key=lambda m: m.frame)
    return out


def tmats_channel_names(text: str) -> dict[int, str]:
    """Channel ID -> data source name of a TMATS text: R-x\\TK1-n and R-x\\DSI-n with the same
    x and n, the attributes read by pychapter10's own TMATS parser (ComputerF1[prefix])."""
    attrs = ComputerF1(data=text.encode("latin-1"))["R-"]
    names, tracks = {}, {}
    for code, value in attrs.items():
        group, _, rest = code.decode("latin-1").partition("\\")
        name, _, n = rest.partition("-")
        if not n:
            continue
        if name == "DSI":
            names[(group, n)] = value.decode("latin-1")
        elif name == "TK1":
            with contextlib.suppress(ValueError):
                tracks[(group, n)] = int(value)
    return {ch: names[k] for k, ch in tracks.items() if k in names}


# ---------------------------------------------------------------------------------------
# PTP with tshark

PTP_FIELDS = (
    "frame.number", "frame.time_epoch", "eth.src", "eth.dst", "ip.src", "ip.dst",
    "ipv6.src", "ipv6.dst", "ptp.v2.messagetype", "ptp.v2.domainnumber",
    "ptp.v2.clockidentity", "ptp.v2.sourceportid", "ptp.v2.sequenceid",
    "ptp.v2.messagelength", "ptp.v2.flags.twostep", "ptp.v2.an.grandmasterclockidentity",
)


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


def _epoch_ns(text: str) -> int:
    whole, _, frac = text.strip().partition(".")
    return int(whole) * 10**9 + int(frac.ljust(9, "0")[:9] or "0")


def _flag(text: str) -> bool:
    return text.strip() in ("1", "True", "true")


def signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_ptp(path: str | Path) -> Decoded:
    """PTP streams (domain, messageType, clockIdentity, portNumber) from tshark's dissector;
    `Decoded.ptp` keeps every message for the grandmaster and Sync/Follow_Up checks."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=f"]
    for name in PTP_FIELDS:
        cmd += ["-e", name]
    rows = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    out = Decoded(Path(path).name, frozenset({"PTP"}))
    for line in rows.splitlines():
        cols = line.split("\t") + [""] * len(PTP_FIELDS)
        (num, epoch, esrc, edst, src4, dst4, src6, dst6, mtype, domain, clock, port, seq,
         length, two_step, gm) = cols[:len(PTP_FIELDS)]
        if not mtype:
            continue  # not PTP
        if src4:
            flow: FlowKey = (src4, dst4, "ip4")
        elif src6:
            flow = (ipaddress.IPv6Address(src6).compressed,
                    ipaddress.IPv6Address(dst6).compressed, "ip6")
        else:
            flow = (esrc.lower(), edst.lower(), "l2")
        m = PtpMsg(flow, int(num), _epoch_ns(epoch), int(mtype, 0), int(domain), int(clock, 16),
                   int(port), int(seq), int(length), _flag(two_step),
                   int(gm, 16) if gm else None)
        out.ptp.append(m)
        name = PTP_NAMES.get(m.msgtype, f"type {m.msgtype}")
        out.add(flow, "PTP", (m.domain, m.msgtype, signed64(m.clock), m.port), 16,
                f"domain {m.domain} {name} {m.clock:016x}-{m.port}",
                Msg(m.frame, m.ts_ns, m.seq, m.length))
    return out


# ---------------------------------------------------------------------------------------
# Which decoder covers which capture

def _by_prefix(name: str) -> Callable[[Path], Decoded] | None:
    if name.startswith("ptpv2_"):
        return decode_ptp
    if name.startswith("ch10udp_"):
        return decode_ch10udp
    if name.startswith("inetx_"):
        return decode_inetx
    if name.startswith(("iena_", "corrupt_iena_")):
        return decode_iena
    return None


def covered_captures() -> list[Path]:
    """The real captures an independent decoder covers (the .c10 recordings apart)."""
    return sorted(p for p in CAPTURES.glob("*.pcap") if _by_prefix(p.name) is not None)


def decoder_for(path: Path) -> Callable[[Path], Decoded]:
    dec = _by_prefix(path.name)
    if dec is None:
        raise KeyError(f"no independent decoder for {path.name}")
    return dec


def c10_recordings() -> list[Path]:
    return sorted(C10_FILES.glob("*.c10"))

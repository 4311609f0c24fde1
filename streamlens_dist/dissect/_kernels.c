/* Small compiled kernels of the columnar dissector (optional: dissect/columnar.py has numpy
 * fallbacks that give identical results).
 *
 * nonprintable(data, starts, ends, out): for each i, the number of bytes of data[starts[i]:ends[i]]
 * that are not printable text (0x20..0x7E, TAB, LF, CR). starts/ends are int64 arrays, out an
 * int64 array of the same length; every range must lie inside data (checked).
 *
 * classify_frames(...): the fast-path ladder of columnar._fast in one pass over a chunk's frames
 * (GIL released); see the comment above classify_frames below.
 *
 * Every entry point refuses (ValueError) buffers that are misaligned or not whole numbers of
 * items, and outputs that share memory with another argument.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "../_argcheck.h"

static unsigned char NONPRINT[256];


static PyObject *nonprintable(PyObject *self, PyObject *args) {
    Py_buffer data, starts, ends, out;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &data, &starts, &ends, &out))
        return NULL;
    PyObject *result = NULL;
    const arg_t args_[4] = {{&data, "data", 1, 0}, {&starts, "starts", 8, 0},
                            {&ends, "ends", 8, 0}, {&out, "out", 8, 1}};
    if (check_args("nonprintable", args_, 4) < 0)
        goto done;
    Py_ssize_t n = starts.len / (Py_ssize_t)sizeof(int64_t);
    if (ends.len != starts.len || out.len != starts.len) {
        PyErr_SetString(PyExc_ValueError, "starts, ends and out must have the same length");
        goto done;
    }
    const unsigned char *d = (const unsigned char *)data.buf;
    const int64_t *s = (const int64_t *)starts.buf, *e = (const int64_t *)ends.buf;
    int64_t *o = (int64_t *)out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < 0 || e[i] < s[i] || e[i] > data.len) {
            PyErr_SetString(PyExc_ValueError, "range outside the data");
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t count = 0;
        for (int64_t j = s[i]; j < e[i]; j++)
            count += NONPRINT[d[j]];
        o[i] = count;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&out);
    return result;
}

/* ------------------------------------------------------------------------------------------
 * classify_frames: the columnar fast path (columnar._fast and its helpers) in C.
 *
 * classify_frames(data, offset, caplen, linktype, untimed,
 *                 codes, tpids, ip6_ext, ptp_ports, ptp_types,
 *                 udp_hint, udp_type, tcp_hint, tcp_type,
 *                 handled, kind, src, dst, ftype, hints, malformed, key4, app_off, app_len)
 *
 * Inputs, one row per frame: offset, caplen (int64), linktype (int32), untimed (uint8).
 * Constant tables built by columnar.py from names.py / ports.py / link.py, so that every code
 * keeps one definition: codes (int64, one value per name of CLASSIFY_NAMES, in that order),
 * tpids, ip6_ext, ptp_ports (int64 sets), ptp_types (int64[16]: frame type per PTP
 * messageType nibble), and the four port tables (int32[65536], -1 where a port maps to
 * nothing).
 * Outputs, one row per frame: handled (uint8), kind (int8: -1 no flow key, 0 ip4, 1 ip6,
 * 2 l2), src and dst (int64 offsets of the addresses in data: 4, 16 or 6 bytes by kind),
 * ftype (int16), hints (int32), malformed (int8, -1 none), key4 (uint64: an IPv4 frame's
 * address pair, big-endian, else 0), app_off and app_len (int64: where the application payload
 * of a handled frame lies in data, the UDP payload or the body of an 0x88F7 frame; -1 and 0 for
 * other frames, see columnar.FrameClasses).
 *
 * A frame is handled exactly when columnar._fast handles it, and then every output equals
 * what the numpy path writes. kind is set for every frame whose flow key the numpy path
 * interns, handled or not (a Chapter 10 body that might be TMATS text is left to the
 * per-frame regex but its IP addresses are known), so both paths intern the same keys in the
 * same order. ftype/hints/malformed/app_off/app_len of a frame that is not handled are
 * 0/0/-1/-1/0. Every read is
 * bounded by the frame's captured bytes.
 * ------------------------------------------------------------------------------------------ */

/* The names whose codes Python passes in `codes`, in this order (the enum below). */
#define CLASSIFY_NAME_LIST \
    X(T_CH10, "type:CH10-Data") X(T_TMATS, "type:TMATS") \
    X(T_IENA_P, "type:IENA-P") X(T_IENA_D, "type:IENA-D") X(T_IENA_N, "type:IENA-N") \
    X(T_IENA_M, "type:IENA-M") X(T_IENA_Q, "type:IENA-Q") X(T_IENA_UNKNOWN, "type:IENA-Unknown") \
    X(T_INETX, "type:INETX") \
    X(T_UDP, "type:UDP") X(T_TCP, "type:TCP") X(T_ICMP, "type:ICMP") X(T_IGMP, "type:IGMP") \
    X(T_FRAGMENT, "type:IP-Fragment") X(T_ARP, "type:ARP") X(T_OTHER, "type:OTHER") \
    X(H_CH10, "hint:CH10") X(H_TMATS, "hint:TMATS") X(H_PTP, "hint:PTP") X(H_IENA, "hint:IENA") \
    X(H_UDP, "hint:UDP") X(H_TCP, "hint:TCP") X(H_ICMP, "hint:ICMP") X(H_IGMP, "hint:IGMP") \
    X(H_MULTICAST, "hint:Multicast") X(H_INETX, "hint:INETX") \
    X(M_CH10_CSUM, "malformed:CH10-header-checksum") X(M_PTP, "malformed:PTP-header") \
    X(M_IENA_SIZE, "malformed:IENA-size") \
    X(L_ETHERNET, "link:ETHERNET") X(L_SLL, "link:SLL") X(L_SLL2, "link:SLL2") \
    X(L_RAW, "link:RAW") X(L_RAW12, "link:RAW_DLT12") X(L_RAW14, "link:RAW_DLT14") \
    X(L_IP4ONLY, "link:IPV4_ONLY") X(L_IP6ONLY, "link:IPV6_ONLY") X(L_NULL, "link:NULL") \
    X(L_LOOP, "link:LOOP") \
    X(E_IP4, "link:ETH_IP4") X(E_IP6, "link:ETH_IP6") \
    X(E_ARP, "link:ETH_ARP") X(E_PTP, "link:ETH_PTP")

#define X(id, name) id,
enum { CLASSIFY_NAME_LIST N_CODES };
#undef X
#define X(id, name) name,
static const char *const CODE_NAMES[N_CODES] = {CLASSIFY_NAME_LIST};
#undef X

#define MAX_SET 64 /* tpids / ptp_ports entries */
#define FAST_VLAN_TAGS 2 /* the fast path walks at most two tags (columnar._fast) */
#define PREFETCH 8 /* frames ahead whose header bytes are fetched into cache */
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH_AT(p) __builtin_prefetch(p)
#else
#define PREFETCH_AT(p) ((void)(p))
#endif

typedef struct {
    const unsigned char *d;
    int64_t c[N_CODES];
    int64_t tpid[MAX_SET];
    Py_ssize_t ntpid;
    unsigned char ip6_ext[256];
    unsigned char ptp_port[65536];
    int64_t ptp_type[16];
    const int32_t *udp_hint, *udp_type, *tcp_hint, *tcp_type;
} ladder_t;

typedef struct { /* one frame's result */
    int64_t ftype, hints, malformed;
    int64_t app_off, app_len; /* the application payload [app_off, app_off + app_len) or -1, 0 */
} class_t;

#define NO_RESULT ((class_t){0, 0, -1, -1, 0})

static inline int64_t be16(const unsigned char *d, int64_t i) {
    return ((int64_t)d[i] << 8) | d[i + 1];
}
static inline int64_t le16(const unsigned char *d, int64_t i) {
    return d[i] | ((int64_t)d[i + 1] << 8);
}
static inline int64_t le32(const unsigned char *d, int64_t i) {
    return le16(d, i) | (le16(d, i + 2) << 16);
}
static inline int64_t be32(const unsigned char *d, int64_t i) {
    return (be16(d, i) << 16) | be16(d, i + 2);
}

static inline int is_tpid(const ladder_t *L, int64_t et) {
    for (Py_ssize_t k = 0; k < L->ntpid; k++)
        if (L->tpid[k] == et)
            return 1;
    return 0;
}

/* ports.by_port on a table: either port's value, the lower port's when both differ. */
static inline int64_t by_port(const int32_t *table, int64_t sport, int64_t dport) {
    int64_t a = table[sport], b = table[dport];
    if (a < 0)
        return b;
    if (b < 0 || a == b)
        return a;
    return sport < dport ? a : b;
}

/* _ptp_type: PTPv2 frame type of the message at [q, pe), or -1 (ptp.detect). */
static int64_t ptp_type(const ladder_t *L, int64_t q, int64_t pe) {
    const unsigned char *d = L->d;
    if (pe - q < 34)
        return -1;
    int64_t mlen = be16(d, q + 2);
    if ((d[q + 1] & 0x0F) != 2 || mlen < 34 || mlen > pe - q)
        return -1;
    return L->ptp_type[d[q] & 0x0F];
}

/* ptp.malformed: is a message [q, pe) that ptp_type refused broken, rather than PTPv1 (a
 * valid older protocol) or one the capture cut short? `whole`: the bytes are the complete
 * message (a UDP datagram whose length field fits the captured bytes; unknown for L2). */
static int ptp_malformed(const unsigned char *d, int64_t q, int64_t pe, int whole) {
    if (pe - q < 34)
        return 1; /* shorter than any PTP header */
    int version = d[q + 1] & 0x0F;
    if (version == 1)
        return 0;
    return version != 2 || be16(d, q + 2) < 34 || whole;
}

/* _ch10_header / ch10.header_ok at payload offset off of the payload [q, q + plen). */
static int ch10_header(const ladder_t *L, int64_t q, int64_t plen, int64_t off, int64_t *dtype,
                       int64_t *dlen, int64_t *hlen, int *csum) {
    const unsigned char *d = L->d;
    if (off < 0 || plen - off < 24)
        return 0;
    int64_t h = q + off;
    if (d[h] != 0x25 || d[h + 1] != 0xEB)
        return 0;
    int64_t plen_f = le32(d, h + 4), dl = le32(d, h + 8);
    int64_t hl = (d[h + 14] & 0x80) ? 36 : 24;
    if (plen_f % 4 != 0 || plen_f < hl || dl > plen_f - hl)
        return 0;
    int64_t total = 0;
    for (int k = 0; k < 11; k++)
        total += le16(d, h + 2 * k);
    *dtype = d[h + 15];
    *dlen = dl;
    *hlen = hl;
    *csum = (total & 0xFFFF) == le16(d, h + 22);
    return 1;
}

/* Might [s, e) (non-empty) be TMATS text: fewer than a tenth of its bytes non-printable
 * (the columnar.py rule)? The count only grows, so checking it after each 64-byte block stops
 * early on binary data and still gives the full count's answer. */
static int mostly_printable(const unsigned char *d, int64_t s, int64_t e) {
    int64_t len = e - s, count = 0, j = s;
    while (j < e) {
        int64_t stop = e - j > 64 ? j + 64 : e;
        for (; j < stop; j++)
            count += NONPRINT[d[j]];
        if (count * 10 >= len)
            return 0;
    }
    return 1;
}

/* _iena_records_fit / iena._walk_messages on [pos, end). */
static int iena_records_fit(const unsigned char *d, int64_t pos, int64_t end, int64_t head) {
    for (;;) {
        if (pos == end)
            return 1;
        if (end - pos < head)
            return 0;
        int64_t length = be16(d, pos + head - 2);
        if (length == 0)
            return 0;
        pos += head + length + (length & 1);
    }
}

/* _udp: the UDP ladder for a datagram at l4 (l4end - l4 >= 8). Returns 0 when the frame
 * goes to the per-frame path: a Chapter 10 body that might be TMATS text, or a whole datagram
 * that classify.py might call malformed in a way named only there (a Format 1 full-packet
 * datagram shorter than its first packet; falling through with a Chapter 10 sync at a
 * candidate offset). Falling through on a PTP port or with the IENA trailer is named here
 * (PTP-header, IENA-size), as classify.py does: random payloads on PTP ports are common. */
static int udp_ladder(const ladder_t *L, int64_t l4, int64_t l4end, int64_t mcast, class_t *r) {
    const unsigned char *d = L->d;
    const int64_t *c = L->c;
    int64_t sport = be16(d, l4), dport = be16(d, l4 + 2), ulen = be16(d, l4 + 4);
    int64_t q = l4 + 8;
    int64_t pe = (ulen >= 8 && ulen <= l4end - l4) ? l4 + ulen : l4end;
    int64_t plen = pe - q;
    int whole = ulen >= 8 && ulen <= l4end - l4;
    int64_t first = -1, other = -1; /* Chapter 10 packet header candidates */
    int64_t hint = by_port(L->udp_hint, sport, dport);
    int64_t port_type = by_port(L->udp_type, sport, dport);
    r->hints = mcast | (hint < 0 ? c[H_UDP] : hint);
    r->ftype = port_type < 0 ? c[T_UDP] : port_type;
    r->malformed = -1;
    r->app_off = q; /* kept only when the frame is handled (classify_frames) */
    r->app_len = plen;

    /* 1. Chapter 10 over UDP: Format 2 candidate first, then formats 1 / 3 */
    if (plen >= 28) {
        int64_t b3 = d[q + 3], b0 = d[q];
        int64_t words = (((int64_t)d[q + 5] << 16) | be16(d, q + 6)) * 4;
        if ((b3 & 0x0F) == 2 && d[q + 4] == 0 && d[q + 8] == 0 && d[q + 9] == 0 &&
            (words == plen - 12 || ((b3 >> 4) == 1 && words > plen - 12)))
            first = 12;
        int64_t fmt = b0 & 0x0F, typ = b0 >> 4;
        if (fmt == 1 && typ == 0)
            other = 4;
        else if (fmt == 1 && typ == 1 && le32(d, q + 8) == 0)
            other = 12;
        else if (fmt == 3)
            other = 8 + le16(d, q + 2);
        int64_t dtype = 0, dlen = 0, hlen = 0, off = -1;
        int csum = 0;
        if (ch10_header(L, q, plen, first, &dtype, &dlen, &hlen, &csum))
            off = first;
        else if (ch10_header(L, q, plen, other, &dtype, &dlen, &hlen, &csum))
            off = other;
        if (off >= 0) {
            int tmats = dtype == 1;
            if (!tmats) {
                int64_t s = q + off + hlen + 4;
                int64_t e = q + off + hlen + dlen;
                if (e > pe)
                    e = pe;
                if (e - s > 0 && mostly_printable(d, s, e))
                    return 0;
            }
            if (csum && whole && off == 4 && b0 == 0x01 && le32(d, q + 8) > plen - 4)
                return 0;
            r->ftype = tmats ? c[T_TMATS] : c[T_CH10];
            r->hints |= c[H_CH10] | (tmats ? c[H_TMATS] : 0);
            r->malformed = csum ? -1 : c[M_CH10_CSUM];
            return 1;
        }
    }

    /* 2. PTP on its ports */
    if (L->ptp_port[sport] || L->ptp_port[dport]) {
        int64_t t = ptp_type(L, q, pe);
        if (t >= 0) {
            r->ftype = t;
            r->hints |= c[H_PTP];
            return 1;
        }
    }

    /* 3. IENA */
    if (plen >= 16 && plen % 2 == 0 && be16(d, q + 2) * 2 == plen && d[pe - 2] == 0xDE &&
        d[pe - 1] == 0xAD) {
        int64_t ks = d[q + 10], w = ks & 0x07, payload = plen - 16;
        int64_t t = c[T_IENA_UNKNOWN];
        if (ks & 0x80) {
            t = c[T_IENA_P];
        } else if (ks & 0x20) {
            int m = (ks & 0x10) != 0;
            if (iena_records_fit(d, q + 14, pe - 2, m ? 6 : 4))
                t = m ? c[T_IENA_M] : c[T_IENA_Q];
        } else if (w >= 1) {
            if (ks & 0x10) {
                if (payload % (2 * (w + 2)) == 0)
                    t = c[T_IENA_D];
            } else if (payload % (2 * (w + 1)) == 0) {
                t = c[T_IENA_N];
            }
        }
        r->ftype = t;
        r->hints |= c[H_IENA];
        return 1;
    }

    /* 3b. iNET-X: control word, packet length == payload length, nanoseconds < 10^9 */
    if (plen >= 28 && be32(d, q) == 0x11000000 && be32(d, q + 12) == plen &&
        be32(d, q + 20) < 1000000000) {
        r->ftype = c[T_INETX];
        r->hints |= c[H_INETX];
        return 1;
    }
    if (whole) { /* fell through: the first protocol on the ladder whose test it failed */
        for (int k = 0; k < 2; k++) {
            int64_t off = k ? other : first;
            if (off >= 0 && off + 2 <= plen && d[q + off] == 0x25 && d[q + off + 1] == 0xEB)
                return 0; /* a Chapter 10 sync: the per-frame ladder names it */
        }
        if ((L->ptp_port[sport] || L->ptp_port[dport]) && ptp_malformed(d, q, pe, 1))
            r->malformed = c[M_PTP];
        else if (plen >= 16 && d[pe - 2] == 0xDE && d[pe - 1] == 0xAD)
            r->malformed = c[M_IENA_SIZE]; /* IENA's test took every trailer whose size fits */
    }
    return 1;
}

/* _transport: the ladder from the IP payload [l4, l4end) on. */
static int transport(const ladder_t *L, int64_t proto, int64_t l4, int64_t l4end, int64_t mcast,
                     class_t *r) {
    const int64_t *c = L->c;
    int64_t l4len = l4end - l4;
    r->malformed = -1;
    r->app_off = -1;
    r->app_len = 0;
    if (proto == 17) {
        if (l4len < 8) {
            r->ftype = c[T_UDP];
            r->hints = mcast | c[H_UDP];
            return 1;
        }
        return udp_ladder(L, l4, l4end, mcast, r);
    }
    if (proto == 6) {
        if (l4len < 4) {
            r->ftype = c[T_TCP];
            r->hints = mcast | c[H_TCP];
            return 1;
        }
        int64_t sport = be16(L->d, l4), dport = be16(L->d, l4 + 2);
        int64_t hint = by_port(L->tcp_hint, sport, dport);
        int64_t t = by_port(L->tcp_type, sport, dport);
        r->ftype = t < 0 ? c[T_TCP] : t;
        r->hints = mcast | (hint < 0 ? c[H_TCP] : hint);
        return 1;
    }
    if (proto == 1 || proto == 58) {
        r->ftype = c[T_ICMP];
        r->hints = mcast | c[H_ICMP];
    } else if (proto == 2) {
        r->ftype = c[T_IGMP];
        r->hints = mcast | c[H_IGMP];
    } else {
        r->ftype = c[T_OTHER];
        r->hints = mcast;
    }
    return 1;
}

/* One frame [base, end): returns handled; sets kind, src and dst when the flow key is known. */
/* How the fast path finds a frame's network layer (link.FAST_HEADERS, fastlink.py): the
 * link header's length, and how the protocol is told: a 16-bit type field at `how` (>= 0,
 * VLAN tags may follow), or one of the BY_ / ONLY_ values below. Only Ethernet has a MAC
 * pair: behind the others only IP is decoded (`ip_only`). len < 0: not read here. */
enum { BY_NIBBLE = -1, BY_FAMILY_NULL = -2, BY_FAMILY_LOOP = -3, ONLY_IP4 = -4, ONLY_IP6 = -5 };
typedef struct {
    int64_t len, how, need; /* need: the captured bytes it reads */
    int ip_only;
} linkhdr_t;

static inline linkhdr_t link_header(const ladder_t *L, int32_t lt) {
    const int64_t *c = L->c;
    if (lt == c[L_ETHERNET])
        return (linkhdr_t){14, 12, 14, 0};
    if (lt == c[L_SLL])
        return (linkhdr_t){16, 14, 16, 1};
    if (lt == c[L_SLL2])
        return (linkhdr_t){20, 0, 20, 1};
    if (lt == c[L_RAW] || lt == c[L_RAW12] || lt == c[L_RAW14])
        return (linkhdr_t){0, BY_NIBBLE, 1, 1};
    if (lt == c[L_IP4ONLY])
        return (linkhdr_t){0, ONLY_IP4, 0, 1};
    if (lt == c[L_IP6ONLY])
        return (linkhdr_t){0, ONLY_IP6, 0, 1};
    if (lt == c[L_NULL])
        return (linkhdr_t){4, BY_FAMILY_NULL, 4, 1};
    if (lt == c[L_LOOP])
        return (linkhdr_t){4, BY_FAMILY_LOOP, 4, 1};
    return (linkhdr_t){-1, 0, 0, 0};
}

/* The IP version a BSD address family names (link.NULL_FAMILIES), 0 for none. */
static inline int family_version(uint32_t f) {
    return f == 2 ? 4 : (f == 24 || f == 28 || f == 30) ? 6 : 0;
}

static inline int64_t version_type(const ladder_t *L, int v) {
    return v == 4 ? L->c[E_IP4] : v == 6 ? L->c[E_IP6] : -1;
}

static int classify_one(const ladder_t *L, linkhdr_t h, int64_t base, int64_t end, int8_t *kind,
                        int64_t *src, int64_t *dst, class_t *r) {
    const unsigned char *d = L->d;
    const int64_t *c = L->c;
    int64_t et = -1, l3 = base + h.len;
    if (h.how >= 0) {
        et = be16(d, base + h.how);
        for (int k = 0; k < FAST_VLAN_TAGS && is_tpid(L, et); k++) {
            if (end < l3 + 4)
                return 0; /* tag stack cut short: per-frame path */
            et = be16(d, l3 + 2);
            l3 += 4;
        }
        if (is_tpid(L, et))
            return 0; /* more tags than the fast path walks */
    } else if (h.how == BY_NIBBLE) {
        et = version_type(L, d[l3] >> 4);
    } else if (h.how == ONLY_IP4 || h.how == ONLY_IP6) {
        et = h.how == ONLY_IP4 ? c[E_IP4] : c[E_IP6];
    } else { /* a NULL header in the capturing host's order (little-endian first), LOOP's big */
        uint32_t big = (uint32_t)be16(d, base) << 16 | (uint32_t)be16(d, base + 2);
        uint32_t little = (uint32_t)d[base] | (uint32_t)d[base + 1] << 8 |
                          (uint32_t)d[base + 2] << 16 | (uint32_t)d[base + 3] << 24;
        int v = family_version(big);
        if (h.how == BY_FAMILY_NULL && family_version(little))
            v = family_version(little);
        et = version_type(L, v);
    }

    if (et == c[E_IP4]) {
        int64_t avail = end - l3;
        if (avail < 20)
            return 0;
        int64_t vhl = d[l3], ihl = (vhl & 0x0F) * 4;
        if ((vhl >> 4) != 4 || ihl < 20 || avail < ihl)
            return 0;
        int64_t total = be16(d, l3 + 2);
        int64_t l4end = (total >= ihl && total <= avail) ? l3 + total : end;
        int64_t mcast = (d[l3 + 16] >= 224 && d[l3 + 16] <= 239) ? c[H_MULTICAST] : 0;
        *kind = 0;
        *src = l3 + 12;
        *dst = l3 + 16;
        if (be16(d, l3 + 6) & 0x1FFF) {
            r->ftype = c[T_FRAGMENT];
            r->hints = mcast;
            r->malformed = -1;
            r->app_off = -1;
            r->app_len = 0;
            return 1;
        }
        return transport(L, d[l3 + 9], l3 + ihl, l4end, mcast, r);
    }
    if (et == c[E_IP6]) {
        if (end - l3 < 40 || (d[l3] >> 4) != 6 || L->ip6_ext[d[l3 + 6]])
            return 0;
        int64_t plen = be16(d, l3 + 4);
        int64_t l4end = (plen != 0 && l3 + 40 + plen <= end) ? l3 + 40 + plen : end;
        int64_t mcast = d[l3 + 24] == 0xFF ? c[H_MULTICAST] : 0;
        *kind = 1;
        *src = l3 + 8;
        *dst = l3 + 24;
        return transport(L, d[l3 + 6], l3 + 40, l4end, mcast, r);
    }
    if (h.ip_only)
        return 0; /* no MAC pair to key it by: the per-frame path decides */
    /* L2: the MAC pair */
    *kind = 2;
    *src = base + 6;
    *dst = base;
    r->ftype = et == c[E_ARP] ? c[T_ARP] : c[T_OTHER];
    r->hints = 0;
    r->malformed = -1;
    r->app_off = -1;
    r->app_len = 0;
    if (et == c[E_PTP]) {
        r->app_off = l3;
        r->app_len = end - l3;
        int64_t t = ptp_type(L, l3, end);
        if (t < 0) { /* an OTHER frame; its message is whole or not: a snap length may cut it */
            if (ptp_malformed(d, l3, end, 0))
                r->malformed = c[M_PTP];
            return 1;
        }
        r->ftype = t;
        r->hints = c[H_PTP];
    }
    return 1;
}

#define N_BUFS 24
static PyObject *classify_frames(PyObject *self, PyObject *args) {
    Py_buffer b[N_BUFS];
    enum { DATA, OFFSET, CAPLEN, LINKTYPE, UNTIMED, CODES, TPIDS, IP6EXT, PTPPORTS, PTPTYPES,
           UDPHINT, UDPTYPE, TCPHINT, TCPTYPE, HANDLED, KIND, SRC, DST, FTYPE, HINTS, MALFORMED,
           KEY4, APPOFF, APPLEN };
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*y*y*y*y*w*w*w*w*w*w*w*w*w*w*", &b[0],
                          &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10],
                          &b[11], &b[12], &b[13], &b[14], &b[15], &b[16], &b[17], &b[18], &b[19],
                          &b[20], &b[21], &b[22], &b[23]))
        return NULL; /* PyArg_ParseTuple releases what it acquired */
    PyObject *result = NULL;
    ladder_t *L = PyMem_Calloc(1, sizeof(ladder_t));
    if (L == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    static const char *const names[N_BUFS] = {
        "data", "offset", "caplen", "linktype", "untimed", "codes", "tpids", "ip6_ext",
        "ptp_ports", "ptp_types", "udp_hint", "udp_type", "tcp_hint", "tcp_type", "handled",
        "kind", "src", "dst", "ftype", "hints", "malformed", "key4", "app_off", "app_len"};
    static const Py_ssize_t item[N_BUFS] = {
        [DATA] = 1, [OFFSET] = 8, [CAPLEN] = 8, [LINKTYPE] = 4, [UNTIMED] = 1, [CODES] = 8,
        [TPIDS] = 8, [IP6EXT] = 8, [PTPPORTS] = 8, [PTPTYPES] = 8, [UDPHINT] = 4,
        [UDPTYPE] = 4, [TCPHINT] = 4, [TCPTYPE] = 4, [HANDLED] = 1, [KIND] = 1, [SRC] = 8,
        [DST] = 8, [FTYPE] = 2, [HINTS] = 4, [MALFORMED] = 1, [KEY4] = 8, [APPOFF] = 8,
        [APPLEN] = 8};
    arg_t args_[N_BUFS];
    for (int k = 0; k < N_BUFS; k++)
        args_[k] = (arg_t){&b[k], names[k], item[k], k >= HANDLED};
    if (check_args("classify_frames", args_, N_BUFS) < 0)
        goto done;
    Py_ssize_t n = b[OFFSET].len / 8;
    /* expected byte length of each buffer (0: any multiple of 8, checked below) */
    const Py_ssize_t want[N_BUFS] = {
        [DATA] = -1, [OFFSET] = n * 8, [CAPLEN] = n * 8, [LINKTYPE] = n * 4, [UNTIMED] = n,
        [CODES] = N_CODES * 8, [TPIDS] = 0, [IP6EXT] = 0, [PTPPORTS] = 0, [PTPTYPES] = 16 * 8,
        [UDPHINT] = 65536 * 4, [UDPTYPE] = 65536 * 4, [TCPHINT] = 65536 * 4,
        [TCPTYPE] = 65536 * 4, [HANDLED] = n, [KIND] = n, [SRC] = n * 8, [DST] = n * 8,
        [FTYPE] = n * 2, [HINTS] = n * 4, [MALFORMED] = n, [KEY4] = n * 8, [APPOFF] = n * 8,
        [APPLEN] = n * 8};
    for (int k = 1; k < N_BUFS; k++) {
        if (want[k] ? b[k].len != want[k] : (b[k].len % 8 != 0 || b[k].len > MAX_SET * 8)) {
            PyErr_Format(PyExc_ValueError, "classify_frames: argument %d has %zd bytes", k + 1,
                         b[k].len);
            goto done;
        }
    }
    L->d = (const unsigned char *)b[DATA].buf;
    memcpy(L->c, b[CODES].buf, sizeof L->c);
    memcpy(L->ptp_type, b[PTPTYPES].buf, sizeof L->ptp_type);
    L->ntpid = b[TPIDS].len / 8;
    memcpy(L->tpid, b[TPIDS].buf, (size_t)b[TPIDS].len);
    const int64_t *set = (const int64_t *)b[IP6EXT].buf;
    for (Py_ssize_t k = 0; k < b[IP6EXT].len / 8; k++)
        if (set[k] >= 0 && set[k] < 256)
            L->ip6_ext[set[k]] = 1;
    set = (const int64_t *)b[PTPPORTS].buf;
    for (Py_ssize_t k = 0; k < b[PTPPORTS].len / 8; k++)
        if (set[k] >= 0 && set[k] < 65536)
            L->ptp_port[set[k]] = 1;
    L->udp_hint = (const int32_t *)b[UDPHINT].buf;
    L->udp_type = (const int32_t *)b[UDPTYPE].buf;
    L->tcp_hint = (const int32_t *)b[TCPHINT].buf;
    L->tcp_type = (const int32_t *)b[TCPTYPE].buf;

    const int64_t *off = (const int64_t *)b[OFFSET].buf, *cap = (const int64_t *)b[CAPLEN].buf;
    const int32_t *lt = (const int32_t *)b[LINKTYPE].buf;
    const unsigned char *untimed = (const unsigned char *)b[UNTIMED].buf;
    /* the frames the ladder reads must lie inside data */
    for (Py_ssize_t i = 0; i < n; i++) {
        linkhdr_t h = link_header(L, lt[i]);
        if (!untimed[i] && h.len >= 0 && cap[i] >= h.need &&
            (off[i] < 0 || off[i] > b[DATA].len - cap[i])) {
            PyErr_Format(PyExc_ValueError, "classify_frames: frame %zd lies outside the data", i);
            goto done;
        }
    }
    unsigned char *handled = (unsigned char *)b[HANDLED].buf;
    int8_t *kind = (int8_t *)b[KIND].buf, *malformed = (int8_t *)b[MALFORMED].buf;
    int64_t *src = (int64_t *)b[SRC].buf, *dst = (int64_t *)b[DST].buf;
    int16_t *ftype = (int16_t *)b[FTYPE].buf;
    int32_t *hints = (int32_t *)b[HINTS].buf;
    /* IPv4 flows: the address pair packed as one big-endian uint64, read while the header is
     * still in cache (interning sorts these instead of gathering the addresses again) */
    uint64_t *key4 = (uint64_t *)b[KEY4].buf;
    int64_t *app_off = (int64_t *)b[APPOFF].buf, *app_len = (int64_t *)b[APPLEN].buf;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + PREFETCH < n && off[i + PREFETCH] >= 0 &&
            off[i + PREFETCH] <= b[DATA].len - 128) { /* the headers of a frame ahead */
            PREFETCH_AT(L->d + off[i + PREFETCH]);
            PREFETCH_AT(L->d + off[i + PREFETCH] + 64);
        }
        int8_t k = -1;
        int64_t s = 0, t = 0;
        class_t r = NO_RESULT;
        int ok = 0;
        linkhdr_t h = link_header(L, lt[i]);
        if (!untimed[i] && h.len >= 0 && cap[i] >= h.need)
            ok = classify_one(L, h, off[i], off[i] + cap[i], &k, &s, &t, &r);
        if (!ok)
            r = NO_RESULT;
        handled[i] = (unsigned char)ok;
        kind[i] = k;
        src[i] = s;
        dst[i] = t;
        key4[i] = k == 0 ? ((uint64_t)be16(L->d, s) << 48 | (uint64_t)be16(L->d, s + 2) << 32 |
                            (uint64_t)be16(L->d, t) << 16 | (uint64_t)be16(L->d, t + 2))
                         : 0;
        ftype[i] = (int16_t)r.ftype;
        hints[i] = (int32_t)r.hints;
        malformed[i] = (int8_t)r.malformed;
        app_off[i] = r.app_off;
        app_len[i] = r.app_len;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(L);
    for (int k = 0; k < N_BUFS; k++)
        PyBuffer_Release(&b[k]);
    return result;
}

/* ------------------------------------------------------------------------------------------
 * intern_u64(keys, ids, uniq) -> m: ids[i] = the index of keys[i] among the distinct keys in
 * order of first appearance, which are written to uniq[0:m]. An open-addressing hash table
 * (grown as needed) instead of a sort: flows are few, frames many. */
/* The slot of a key: Fibonacci hashing folded so that the low bits depend on every key bit
 * (an IPv4 pair is src << 32 | dst: a plain product's low bits see only dst, and a capture of
 * many sources to one destination then probed linearly through one long cluster). */
static inline size_t slot_of(uint64_t key, size_t cap) {
    uint64_t x = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x ^ (x >> 32)) & (cap - 1);
}

static int grow(uint64_t **slot_key, int32_t **slot_id, size_t *cap, const uint64_t *uniq,
                int64_t m) {
    size_t n = *cap ? *cap * 2 : 1024;
    uint64_t *k = PyMem_Malloc(n * sizeof *k);
    int32_t *v = PyMem_Malloc(n * sizeof *v);
    if (k == NULL || v == NULL) {
        PyMem_Free(k);
        PyMem_Free(v);
        return 0;
    }
    for (size_t j = 0; j < n; j++)
        v[j] = -1;
    for (int64_t r = 0; r < m; r++) { /* reinsert every key seen so far */
        size_t h = slot_of(uniq[r], n);
        while (v[h] >= 0)
            h = (h + 1) & (n - 1);
        k[h] = uniq[r];
        v[h] = (int32_t)r;
    }
    PyMem_Free(*slot_key);
    PyMem_Free(*slot_id);
    *slot_key = k;
    *slot_id = v;
    *cap = n;
    return 1;
}

static PyObject *intern_u64(PyObject *self, PyObject *args) {
    Py_buffer keys, ids, uniq;
    if (!PyArg_ParseTuple(args, "y*w*w*", &keys, &ids, &uniq))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = keys.len / 8;
    uint64_t *slot_key = NULL;
    int32_t *slot_id = NULL;
    size_t cap = 0;
    int64_t m = 0;
    const arg_t args_[3] = {{&keys, "keys", 8, 0}, {&ids, "ids", 4, 1}, {&uniq, "uniq", 8, 1}};
    if (check_args("intern_u64", args_, 3) < 0)
        goto done;
    if (keys.len % 8 || ids.len != n * 4 || uniq.len != n * 8 || n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "intern_u64: keys uint64[n], ids int32[n], uniq uint64[n]");
        goto done;
    }
    const uint64_t *k = keys.buf;
    int32_t *id = ids.buf;
    uint64_t *u = uniq.buf;
    if (!grow(&slot_key, &slot_id, &cap, u, 0)) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t h = slot_of(k[i], cap);
        while (slot_id[h] >= 0 && slot_key[h] != k[i])
            h = (h + 1) & (cap - 1);
        if (slot_id[h] < 0) {
            u[m] = k[i];
            slot_key[h] = k[i];
            slot_id[h] = (int32_t)m++;
            id[i] = slot_id[h];
            if ((size_t)m * 2 > cap && !grow(&slot_key, &slot_id, &cap, u, m)) {
                PyErr_NoMemory();
                goto done;
            }
        } else {
            id[i] = slot_id[h];
        }
    }
    result = PyLong_FromLongLong((long long)m);
done:
    PyMem_Free(slot_key);
    PyMem_Free(slot_id);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&uniq);
    return result;
}

static PyMethodDef methods[] = {
    {"nonprintable", nonprintable, METH_VARARGS,
     "nonprintable(data, starts, ends, out): count non-printable bytes per range"},
    {"classify_frames", classify_frames, METH_VARARGS,
     "classify_frames(data, offset, caplen, linktype, untimed, codes, tpids, ip6_ext, ptp_ports, "
     "ptp_types, udp_hint, udp_type, tcp_hint, tcp_type, handled, kind, src, dst, ftype, hints, "
     "malformed, key4, app_off, app_len): the columnar fast-path ladder"},
    {"intern_u64", intern_u64, METH_VARARGS,
     "intern_u64(keys, ids, uniq) -> number of distinct keys (ids in order of first appearance)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    for (int c = 0; c < 256; c++)
        NONPRINT[c] = !((c >= 0x20 && c <= 0x7E) || c == 9 || c == 10 || c == 13);
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *names = PyTuple_New(N_CODES);
    if (names == NULL)
        goto fail;
    for (int k = 0; k < N_CODES; k++) {
        PyObject *s = PyUnicode_FromString(CODE_NAMES[k]);
        if (s == NULL) {
            Py_DECREF(names);
            goto fail;
        }
        PyTuple_SET_ITEM(names, k, s);
    }
    if (PyModule_AddObject(m, "CLASSIFY_NAMES", names) < 0) {
        Py_DECREF(names);
        goto fail;
    }
    /* 2: frames that might carry a malformed payload the ladder names are left unhandled;
     * 3: iNET-X (type and hint INETX) and the app_off / app_len outputs */
    if (PyModule_AddIntConstant(m, "LADDER_VERSION", 4) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

/* Compiled record walks for streamlens_dist.capture.columns.
 *
 * Plain CPython C API and the buffer protocol, no numpy headers: the caller passes the chunk's
 * bytes and preallocated, C-contiguous output arrays (int64 / uint8 / int32), and each function
 * fills rows from index `n` on and returns how far it got. The rules are those of
 * capture/pcap.py and capture/pcapng.py; the Python walks stay the definition and the tests
 * compare the two frame by frame.
 *
 * Every read is bounded by the buffer length: lengths from the file are compared with the
 * bytes left before they are used, so a hostile length stops the walk, never reads past it.
 * The arguments are checked too (ValueError): start position and row, the timestamp
 * multiplier, every interface row's conversion, alignment, and outputs that share memory with
 * another argument.
 *
 * Return statuses (shared with columns.py):
 *   0 END    the data ended cleanly at a record/block boundary
 *   1 FULL   the output arrays are full; call again from the returned pos with more room
 *   2 STOP   damage: the walk stops at the returned pos, as the Python walk does
 *   3 BLOCK  (pcapng) a section header or interface description block, whose framing is valid,
 *            starts at pos and ends at `next`: Python applies it and calls again from `next`
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include "../_argcheck.h"

#define ST_END 0
#define ST_FULL 1
#define ST_STOP 2
#define ST_BLOCK 3

#define PCAP_RECORD_HEADER 16
#define NS_PER_S 1000000000ULL

/* The walks chase lengths from header to header, so every record costs a cache miss unless
 * the bytes ahead are already on their way. Records are laid out in order but a header may
 * sit in any cache line, so every line up to PREFETCH_AHEAD bytes ahead is requested
 * (`fetched`: how far that has got): 1.8x faster than one line per record at a fixed distance
 * (2M records of a 500 MB capture in the page cache: 37-39 ms against 65-72 ms). */
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch((p))
#else
#define PREFETCH(p) ((void)0)
#endif
#define PREFETCH_AHEAD 4096
#define CACHE_LINE 64

/* Request the lines of b[*fetched, min(pos + PREFETCH_AHEAD, end)). */
static inline void prefetch_ahead(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end,
                                  Py_ssize_t *fetched)
{
    Py_ssize_t ahead = end - pos > PREFETCH_AHEAD ? pos + PREFETCH_AHEAD : end;
    for (Py_ssize_t q = *fetched; q < ahead; q += CACHE_LINE)
        PREFETCH(b + q);
    if (*fetched < ahead)
        *fetched = ahead;
}

static inline uint32_t rd32(const unsigned char *p, int be)
{
    if (be)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static inline uint32_t rd16(const unsigned char *p, int be)
{
    if (be)
        return ((uint32_t)p[0] << 8) | p[1];
    return ((uint32_t)p[1] << 8) | p[0];
}

#define ZERO_RUN 64 /* pcap.ZERO_RUN */

/* At least ZERO_RUN bytes from p, all zero (`left`: bytes available from p). */
static int zero_run(const unsigned char *p, Py_ssize_t left)
{
    if (left < ZERO_RUN)
        return 0;
    for (int i = 0; i < ZERO_RUN; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Rows that fit in an output buffer of `itemsize`-byte items. */
static Py_ssize_t rows_of(const Py_buffer *b, Py_ssize_t itemsize)
{
    return b->len / itemsize;
}

static int check_start(Py_ssize_t pos, Py_ssize_t len, Py_ssize_t n, Py_ssize_t rows)
{
    if (pos < 0 || pos > len) {
        PyErr_SetString(PyExc_ValueError, "start position outside the buffer");
        return -1;
    }
    if (n < 0 || n > rows) {
        PyErr_SetString(PyExc_ValueError, "row index outside the output arrays");
        return -1;
    }
    return 0;
}

/* pcap(buf, pos, big_endian, mult, limit, ts, offset, caplen, n) -> (n, pos, status, odd)
 *
 * odd: the row of the first record of this call whose timestamp fraction is out of range
 * (>= 10**6 for µs files, >= 10**9 for ns files; taken literally, the splitter warns), or -1.
 *
 * ts = sec * 10**9 + frac * mult (mult 1000 for µs files, 1 for ns files) fits int64 for any
 * 32-bit sec and frac, so pcap frames are always timed and need no deferral. */
static PyObject *walk_pcap(PyObject *self, PyObject *args)
{
    Py_buffer buf, tsb, offb, capb;
    PyObject *result = NULL;
    Py_ssize_t pos, n;
    int be;
    unsigned long long mult, limit;
    int status = ST_END;
    Py_ssize_t odd = -1;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*npKKw*w*w*n", &buf, &pos, &be, &mult, &limit, &tsb, &offb,
                          &capb, &n))
        return NULL;
    Py_ssize_t rows = rows_of(&tsb, 8);
    if (rows_of(&offb, 8) < rows)
        rows = rows_of(&offb, 8);
    if (rows_of(&capb, 8) < rows)
        rows = rows_of(&capb, 8);
    const arg_t args_[4] = {{&buf, "buf", 1, 0}, {&tsb, "ts", 8, 1}, {&offb, "offset", 8, 1},
                            {&capb, "caplen", 8, 1}};
    if (check_args("pcap", args_, 4) < 0)
        goto fail;
    if (mult != 1 && mult != 1000) { /* frac_max below knows only these two */
        PyErr_Format(PyExc_ValueError, "pcap: mult %llu is not 1 or 1000", mult);
        goto fail;
    }
    if (check_start(pos, buf.len, n, rows) < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    const unsigned char *b = (const unsigned char *)buf.buf;
    const Py_ssize_t end = buf.len;
    int64_t *ts = (int64_t *)tsb.buf, *off = (int64_t *)offb.buf, *cap = (int64_t *)capb.buf;
    const uint32_t frac_max = mult == 1 ? 1000000000u : 1000000u;
    Py_ssize_t fetched = pos;
    while (pos < end) {
        if (end - pos < PCAP_RECORD_HEADER) {
            status = ST_STOP;
            break;
        }
        const unsigned char *p = b + pos;
        prefetch_ahead(b, pos, end, &fetched);
        uint32_t sec = rd32(p, be), frac = rd32(p + 4, be), incl = rd32(p + 8, be);
        /* ZERO_RUN zero bytes where a header should be are zero fill, as in pcap.walk */
        if (((sec | frac | incl | rd32(p + 12, be)) == 0 && zero_run(p, end - pos))
            || (unsigned long long)incl > limit
            || (unsigned long long)incl > (unsigned long long)(end - pos - PCAP_RECORD_HEADER)) {
            status = ST_STOP;
            break;
        }
        if (n >= rows) {
            status = ST_FULL;
            break;
        }
        if (frac >= frac_max && odd < 0)
            odd = n;
        ts[n] = (int64_t)((uint64_t)sec * NS_PER_S + (uint64_t)frac * mult);
        off[n] = pos + PCAP_RECORD_HEADER;
        cap[n] = incl;
        n++;
        pos += PCAP_RECORD_HEADER + (Py_ssize_t)incl;
    }
    Py_END_ALLOW_THREADS

    result = Py_BuildValue("nnin", n, pos, status, odd);
fail: /* one cleanup path: result stays NULL on failure */
    PyBuffer_Release(&buf);
    PyBuffer_Release(&tsb);
    PyBuffer_Release(&offb);
    PyBuffer_Release(&capb);
    return result;
}

/* One pcapng interface as columns.py packs it: a row of six native int64 (an aligned numpy
 * int64 array of shape (interfaces, 6)). */
typedef struct {
    int64_t linktype;
    int64_t snaplen;
    int64_t kind;  /* CONV_* below */
    int64_t param; /* multiplier, divisor (as unsigned), or shift */
    int64_t off_ns; /* if_tsoffset * 10**9 */
    int64_t spare;
} iface_t;

#define TS_BOUND ((int64_t)1 << 62) /* records.TS_BOUND: |ns| must stay below it */

#define CONV_DEFER 0 /* always leave the conversion to Python (records.ticks_to_ns) */
#define CONV_MUL 1   /* ticks * param, tsresol 10^-r with r <= 9 */
#define CONV_DIV 2   /* ticks // param (read as unsigned), tsresol 10^-r with 9 < r <= 28 */
#define CONV_ZERO 3  /* ticks // 10^(r-9) with 10^(r-9) > 2^64: always 0 for unsigned ticks */
#define CONV_POW2 4  /* (ticks * 10**9) >> param, tsresol 2^-param */

/* ns for an unsigned 64-bit tick count, exact, when it is the answer of ticks_to_ns's first
 * attempt (the unsigned reading) and lies within ±TS_BOUND; returns 0 to defer everything
 * else (the signed re-reading, out-of-range values, unusual interfaces) to Python. */
static inline int ticks_ns(uint64_t u, const iface_t *f, int64_t *out)
{
    uint64_t v;
    switch (f->kind) {
    case CONV_MUL: {
        uint64_t m = (uint64_t)f->param;
        if (u > (uint64_t)INT64_MAX / m)
            return 0;
        v = u * m;
        break;
    }
    case CONV_DIV:
        v = u / (uint64_t)f->param;
        break;
    case CONV_ZERO:
        v = 0;
        break;
    case CONV_POW2: {
        /* u * 10**9 as a 128-bit (hi, lo) pair from two 32x30-bit products, then >> k */
        unsigned k = (unsigned)f->param;
        uint64_t a = (u & 0xFFFFFFFFULL) * NS_PER_S; /* < 2^62 */
        uint64_t c = (u >> 32) * NS_PER_S;           /* < 2^62 */
        uint64_t lo = a + (c << 32);
        uint64_t hi = (c >> 32) + (lo < a);
        if (k >= 64) /* k <= 127: checked at entry */
            v = hi >> (k - 64);
        else if (k == 0) {
            if (hi)
                return 0;
            v = lo;
        } else {
            if (hi >> k)
                return 0;
            v = (lo >> k) | (hi << (64 - k));
        }
        break;
    }
    default:
        return 0;
    }
    if (v >= TS_BOUND)
        return 0;
    /* |v + off_ns| < TS_BOUND (records.TS_BOUND); v < 2^62, so the sum cannot overflow
     * for any int64 offset below 2^62 in magnitude, and larger offsets defer */
    if (f->off_ns >= TS_BOUND || f->off_ns <= -TS_BOUND)
        return 0;
    int64_t ns = (int64_t)v + f->off_ns;
    if (ns >= TS_BOUND || ns <= -TS_BOUND)
        return 0;
    *out = ns;
    return 1;
}

#define SHB_TYPE 0x0A0D0D0AU
#define IDB_TYPE 1U
#define PB_TYPE 2U
#define SPB_TYPE 3U
#define EPB_TYPE 6U

/* Whether the options from block offset `o` to the trailer (at blen - 4) stay inside it, as
 * pcapng.py's _options reads them: an option running past its block is damage. */
static int options_fit(const unsigned char *p, int64_t o, uint32_t blen, int bbe)
{
    const int64_t end = (int64_t)blen - 4;
    while (o + 4 <= end) {
        uint32_t code = rd16(p + o, bbe), olen = rd16(p + o + 2, bbe);
        if (code == 0)
            return 1;
        if (o + 4 + (int64_t)olen > end)
            return 0;
        o += 4 + (int64_t)olen + (-(int64_t)olen & 3);
    }
    return 1;
}

/* pcapng(buf, pos, big_endian, ifaces, ts, untimed, linktype, offset, caplen, n)
 *     -> (n, pos, status, next)
 *
 * untimed is written 0 (timed), 1 (untimed) or 2 (deferred: ts holds the raw 64-bit tick
 * count and linktype the interface index; Python converts it with records.ticks_to_ns). */
static PyObject *walk_pcapng(PyObject *self, PyObject *args)
{
    Py_buffer buf, ifb, tsb, untb, ltb, offb, capb;
    PyObject *result = NULL;
    Py_ssize_t pos, n, next = -1;
    int be;
    int status = ST_END;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*npy*w*w*w*w*w*n", &buf, &pos, &be, &ifb, &tsb, &untb, &ltb,
                          &offb, &capb, &n))
        return NULL;
    Py_ssize_t rows = rows_of(&tsb, 8);
    if (rows_of(&untb, 1) < rows)
        rows = rows_of(&untb, 1);
    if (rows_of(&ltb, 4) < rows)
        rows = rows_of(&ltb, 4);
    if (rows_of(&offb, 8) < rows)
        rows = rows_of(&offb, 8);
    if (rows_of(&capb, 8) < rows)
        rows = rows_of(&capb, 8);
    const arg_t args_[7] = {{&buf, "buf", 1, 0}, {&ifb, "ifaces", 8, 0}, {&tsb, "ts", 8, 1},
                            {&untb, "untimed", 1, 1}, {&ltb, "linktype", 4, 1},
                            {&offb, "offset", 8, 1}, {&capb, "caplen", 8, 1}};
    if (check_args("pcapng", args_, 7) < 0)
        goto fail;
    if (ifb.len % (Py_ssize_t)sizeof(iface_t)) {
        PyErr_SetString(PyExc_ValueError, "interface table is not a whole number of rows");
        goto fail;
    }
    if (check_start(pos, buf.len, n, rows) < 0)
        goto fail;
    const iface_t *ifs = (const iface_t *)ifb.buf;
    const Py_ssize_t nif = ifb.len / (Py_ssize_t)sizeof(iface_t);
    /* the ranges columns.py's _iface_row writes; anything else is not from a file */
    for (Py_ssize_t i = 0; i < nif; i++) {
        int64_t k = ifs[i].kind, p = ifs[i].param;
        const char *bad = NULL;
        if (k < CONV_DEFER || k > CONV_POW2)
            bad = "an unknown conversion";
        else if (k == CONV_MUL && (p < 1 || p > (int64_t)NS_PER_S))
            bad = "a multiplier outside [1, 10**9]";
        else if (k == CONV_DIV && p == 0)
            bad = "a zero divisor";
        else if (k == CONV_POW2 && (p < 0 || p > 127))
            bad = "a shift outside [0, 127]";
        else if (ifs[i].linktype < INT32_MIN || ifs[i].linktype > INT32_MAX)
            bad = "a link type beyond int32";
        if (bad != NULL) {
            PyErr_Format(PyExc_ValueError, "pcapng: interface %zd has %s", i, bad);
            goto fail;
        }
    }

    Py_BEGIN_ALLOW_THREADS
    const unsigned char *b = (const unsigned char *)buf.buf;
    const Py_ssize_t end = buf.len;
    int64_t *ts = (int64_t *)tsb.buf, *off = (int64_t *)offb.buf, *cap = (int64_t *)capb.buf;
    uint8_t *unt = (uint8_t *)untb.buf;
    int32_t *lt = (int32_t *)ltb.buf;
    Py_ssize_t fetched = pos;
    while (pos < end) {
        if (end - pos < 12) {
            status = ST_STOP;
            break;
        }
        const unsigned char *p = b + pos;
        prefetch_ahead(b, pos, end, &fetched);
        int bbe = be;
        if (p[0] == 0x0A && p[1] == 0x0D && p[2] == 0x0D && p[3] == 0x0A) {
            if (p[8] == 0x4D && p[9] == 0x3C && p[10] == 0x2B && p[11] == 0x1A)
                bbe = 0;
            else if (p[8] == 0x1A && p[9] == 0x2B && p[10] == 0x3C && p[11] == 0x4D)
                bbe = 1;
            else {
                status = ST_STOP;
                break;
            }
        }
        uint32_t btype = rd32(p, bbe), blen = rd32(p + 4, bbe);
        if (blen < 12 || blen % 4 || (uint64_t)blen > (uint64_t)(end - pos)
            || rd32(p + blen - 4, bbe) != blen) {
            status = ST_STOP;
            break;
        }
        const int64_t room = (int64_t)blen - 12; /* body bytes between header and trailer */
        if (btype == SHB_TYPE || btype == IDB_TYPE) {
            status = ST_BLOCK;
            next = pos + (Py_ssize_t)blen;
            break;
        }
        if (btype == EPB_TYPE || btype == PB_TYPE) {
            if (room < 20) {
                status = ST_STOP;
                break;
            }
            uint32_t ifid = btype == EPB_TYPE ? rd32(p + 8, bbe) : rd16(p + 8, bbe);
            uint32_t incl = rd32(p + 20, bbe);
            if ((int64_t)incl > room - 20 || !options_fit(p, 28 + (int64_t)incl
                                                          + (-(int64_t)incl & 3), blen, bbe)) {
                status = ST_STOP;
                break;
            }
            if (n >= rows) {
                status = ST_FULL;
                break;
            }
            if ((Py_ssize_t)ifid >= nif) {
                ts[n] = 0;
                unt[n] = 1;
                lt[n] = -1;
            } else {
                const iface_t *f = &ifs[ifid];
                uint64_t ticks = ((uint64_t)rd32(p + 12, bbe) << 32) | rd32(p + 16, bbe);
                int64_t ns;
                if (ticks_ns(ticks, f, &ns)) {
                    ts[n] = ns;
                    unt[n] = 0;
                    lt[n] = (int32_t)f->linktype;
                } else {
                    ts[n] = (int64_t)ticks;
                    unt[n] = 2;
                    lt[n] = (int32_t)ifid;
                }
            }
            off[n] = pos + 28;
            cap[n] = incl;
            n++;
        } else if (btype == SPB_TYPE) {
            if (room < 4) {
                status = ST_STOP;
                break;
            }
            if (n >= rows) {
                status = ST_FULL;
                break;
            }
            int64_t c = rd32(p + 8, bbe); /* original length */
            if (nif > 0) {
                if (ifs[0].snaplen != 0 && ifs[0].snaplen < c)
                    c = ifs[0].snaplen;
                lt[n] = (int32_t)ifs[0].linktype;
            } else
                lt[n] = -1;
            if (room - 4 < c)
                c = room - 4;
            ts[n] = 0;
            unt[n] = 1;
            off[n] = pos + 12;
            cap[n] = c;
            n++;
        }
        pos += (Py_ssize_t)blen;
    }
    Py_END_ALLOW_THREADS

    result = Py_BuildValue("nnin", n, pos, status, next);
fail: /* one cleanup path: result stays NULL on failure */
    PyBuffer_Release(&buf);
    PyBuffer_Release(&ifb);
    PyBuffer_Release(&tsb);
    PyBuffer_Release(&untb);
    PyBuffer_Release(&ltb);
    PyBuffer_Release(&offb);
    PyBuffer_Release(&capb);
    return result;
}

static PyMethodDef walk_methods[] = {
    {"pcap", walk_pcap, METH_VARARGS,
     "pcap(buf, pos, big_endian, mult, limit, ts, offset, caplen, n) -> (n, pos, status)"},
    {"pcapng", walk_pcapng, METH_VARARGS,
     "pcapng(buf, pos, big_endian, ifaces, ts, untimed, linktype, offset, caplen, n)"
     " -> (n, pos, status, next)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef walk_module = {
    PyModuleDef_HEAD_INIT,
    "_walk",
    "Compiled pcap/pcapng record walks filling column arrays (see columns.py).",
    -1,
    walk_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__walk(void)
{
    PyObject *m = PyModule_Create(&walk_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "IFACE_SIZE", (long)sizeof(iface_t)) < 0
        || PyModule_AddIntConstant(m, "END", ST_END) < 0
        || PyModule_AddIntConstant(m, "FULL", ST_FULL) < 0
        || PyModule_AddIntConstant(m, "STOP", ST_STOP) < 0
        || PyModule_AddIntConstant(m, "BLOCK", ST_BLOCK) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

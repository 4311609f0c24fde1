/* Protocol messages of a chunk's frames in one compiled pass (optional: dissect/streams.py has
 * a numpy path and the per-frame definition `frame_messages`; tests/test_stream_messages.py
 * holds all three to the same output).
 *
 * messages(buf, ftype, in_flow, kinds, app_off, app_len, start, out, walk)
 *                                                  -> (messages written, next frame)
 *   buf      the chunk bytes
 *   ftype    int16[n] frame type codes, in_flow bool[n]: frames outside a flow have none;
 *            kinds int64[types]: per type code which messages a frame may carry (-1 none,
 *            1 CH10, 2 PTP, 3 IENA, 4 INETX, 5 UDP that may be a Chapter 10 segment
 *            continuation); app_off/app_len int64[n] where the classifier located each payload
 *   start    the first frame to read
 *   out      a tuple of NCOL int64[cap] columns (streams.MESSAGE_COLUMNS): the messages in
 *            message order; the pass stops before the first frame whose messages might not
 *            fit (a datagram of n bytes holds at most 2 + n / 24): call again from there
 *   walk     uint8[n] set to 1 for frames left to the per-frame path (a payload not located
 *            or outside the buffer), 2 for Chapter 10 datagrams holding a TMATS packet: their
 *            messages are written, and Python extracts the text
 *
 * intern(flow, proto, id1, id2, id3, id4, sid, order, count) -> number of streams
 *   per message (int64 columns) its stream id in order of first appearance, `order`: the
 *   messages sorted stably by stream id (a counting sort), and count[s]: the messages of
 *   stream s (int64[n] outputs, the first `streams` entries of count are written).
 *
 * Both refuse (ValueError) columns that are misaligned or not whole numbers of items, and
 * outputs that share memory with another argument; messages() raises IndexError for a frame
 * type outside kinds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "../_argcheck.h"


enum { ROW, POS, PROTO, ID1, ID2, ID3, ID4, SEQ, BITS, SIZE, STATE, ERROR, SEGMENT, AUX, NCOL };
enum { CH10_UDP, CH10, PTP, IENA, INETX, UDP_CONT };
#define MAX_PACKETS 4096
#define TMATS 0x01

static inline int64_t be(const uint8_t *p, int w) {
    uint64_t v = 0;
    for (int i = 0; i < w; i++) v = (v << 8) | p[i];
    return (int64_t)v;
}
static inline int64_t le(const uint8_t *p, int w) {
    uint64_t v = 0;
    for (int i = w - 1; i >= 0; i--) v = (v << 8) | p[i];
    return (int64_t)v;
}

/* ch10.header_ok: validity only; room = bytes from h to the end of the payload */
static int header_ok(const uint8_t *h, int64_t room) {
    if (room < 24 || h[0] != 0x25 || h[1] != 0xEB) return 0;
    int64_t plen = le(h + 4, 4), dlen = le(h + 8, 4), hlen = (h[14] & 0x80) ? 36 : 24;
    return plen % 4 == 0 && plen >= hlen && dlen <= plen - hlen;
}

/* the output columns; F(k, c) is column c of message k (with `cols` in scope) */
typedef struct {
    int64_t *col[NCOL];
} Cols;
#define F(k, c) (cols->col[c][k])

static int64_t row_out(const Cols *cols, int64_t o, int64_t row, int64_t pos, int64_t proto) {
    F(o, ROW) = row; F(o, POS) = pos; F(o, PROTO) = proto;
    F(o, ID1) = F(o, ID2) = F(o, ID3) = F(o, ID4) = 0;
    F(o, STATE) = -1; F(o, ERROR) = 0; F(o, SEGMENT) = 0; F(o, AUX) = -1;
    return o;
}

/* Messages of a Chapter 10 datagram; *tmats set when a packet is TMATS (data type 0x01). */
static int64_t ch10(const uint8_t *p, int64_t n, int64_t row, const Cols *cols, int64_t k,
                    uint8_t *tmats) {
    int fmt = 0;
    int64_t off = -1;
    if (n < 28) return 0;
    /* ch10.candidates: Format 2 first, then what byte 0 says */
    if ((p[3] & 0x0F) == 2 && p[4] == 0 && p[8] == 0 && p[9] == 0) {
        int64_t words = be(p + 5, 3) * 4;
        if ((words == n - 12 || ((p[3] >> 4) == 1 && words > n - 12)) && header_ok(p + 12, n - 12)) {
            fmt = 2;
            off = 12;
        }
    }
    if (!fmt) {
        int f = p[0] & 0x0F, t = p[0] >> 4;
        int64_t o = -1;
        if (f == 1 && t == 0) o = 4;
        else if (f == 1 && t == 1 && le(p + 8, 4) == 0) o = 12;
        else if (f == 3) o = 8 + le(p + 2, 2);
        if (o < 0 || o >= n || !header_ok(p + o, n - o)) return 0;
        fmt = f;
        off = o;
    }
    int full;
    int64_t t = row_out(cols, k, row, 0, CH10_UDP);
    F(t, ID1) = fmt;
    F(t, BITS) = 24;
    if (fmt == 2) {
        full = (p[3] >> 4) == 0;
        F(t, SEQ) = be(p, 3);
    } else if (fmt == 1) {
        full = (p[0] >> 4) == 0;
        F(t, SEQ) = le(p + 1, 3);
    } else {
        int64_t word = le(p + 4, 4), bits = 32 - 4 * (p[0] >> 4);
        if (bits < 0) bits = 0; /* L >= 8: the whole word is the source ID */
        full = 1;
        F(t, BITS) = bits;
        F(t, ID2) = bits < 32 ? word >> bits : 0;
        F(t, SEQ) = word & ((INT64_C(1) << bits) - 1);
    }
    F(t, SIZE) = n;
    F(t, SEGMENT) = full ? 0 : 1;
    int64_t count = 1;
    while (count <= MAX_PACKETS && n - off >= 24) {
        const uint8_t *h = p + off;
        if (!header_ok(h, n - off)) break;
        if (h[15] == TMATS) *tmats = 2;
        int64_t o = row_out(cols, k + count, row, count, CH10), plen = le(h + 4, 4);
        F(o, ID1) = le(h + 2, 2);
        F(o, ID2) = h[15];
        F(o, SEQ) = h[13];
        F(o, BITS) = 8;
        F(o, SIZE) = plen;
        F(o, ERROR) = (h[14] & 0x30) != 0;
        count++;
        if (!full) break;
        /* header_ok: plen >= 24, which bounds the packets by the room the caller reserved */
        off += plen;
    }
    return count;
}

#define PREFETCH_FRAMES 8
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH_AT(p) __builtin_prefetch(p)
#else
#define PREFETCH_AT(p) ((void)(p))
#endif

static PyObject *messages(PyObject *self, PyObject *args) {
    Py_buffer b[7], ob[NCOL];
    PyObject *outs;
    Py_ssize_t m;
    memset(b, 0, sizeof b);
    memset(ob, 0, sizeof ob);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*nOw*", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                          &m, &outs, &b[6]))
        return NULL;
    PyObject *result = NULL;
    if (!PyTuple_Check(outs) || PyTuple_GET_SIZE(outs) != NCOL) {
        PyErr_Format(PyExc_TypeError, "messages: out must be a tuple of %d columns", NCOL);
        goto done;
    }
    Cols out;
    const Cols *cols = &out;
    for (int j = 0; j < NCOL; j++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(outs, j), &ob[j],
                               PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        if (ob[j].len != ob[0].len) {
            PyErr_SetString(PyExc_ValueError, "messages: output columns differ in length");
            goto done;
        }
        out.col[j] = ob[j].buf;
    }
    static const char *const outnames[NCOL] = {
        "out[row]", "out[pos]", "out[proto]", "out[id1]", "out[id2]", "out[id3]", "out[id4]",
        "out[seq]", "out[bits]", "out[size]", "out[state]", "out[error]", "out[segment]",
        "out[aux]"};
    arg_t args_[7 + NCOL] = {{&b[0], "buf", 1, 0}, {&b[1], "ftype", 2, 0},
                             {&b[2], "in_flow", 1, 0}, {&b[3], "kinds", 8, 0},
                             {&b[4], "app_off", 8, 0}, {&b[5], "app_len", 8, 0},
                             {&b[6], "walk", 1, 1}};
    for (int j = 0; j < NCOL; j++)
        args_[7 + j] = (arg_t){&ob[j], outnames[j], 8, 1};
    if (check_args("messages", args_, 7 + NCOL) < 0)
        goto done;
    Py_ssize_t nframes = b[1].len / 2, ntypes = b[3].len / 8;
    if (b[2].len != nframes || b[4].len != nframes * 8 || b[5].len != nframes * 8 ||
        b[6].len != nframes) {
        PyErr_SetString(PyExc_ValueError, "messages: column lengths differ");
        goto done;
    }
    if (m < 0 || m > nframes) {
        PyErr_Format(PyExc_ValueError, "messages: start %zd is outside [0, %zd]", m, nframes);
        goto done;
    }
    const uint8_t *buf = b[0].buf, *in_flow = b[2].buf;
    const int16_t *ftype = b[1].buf;
    const int64_t *kinds = b[3].buf, *aoff = b[4].buf, *alen = b[5].buf;
    uint8_t *walk = b[6].buf;
    int64_t k = 0, cap = ob[0].len / 8;
    Py_ssize_t i = m;
    for (; i < nframes; i++) {
        /* the payload of a frame a few ahead: frames are far apart in the chunk, so without
         * it every frame's payload is a cache miss (20% of this pass on a 64 MiB chunk) */
        if (i + PREFETCH_FRAMES < nframes && aoff[i + PREFETCH_FRAMES] >= 0 &&
            aoff[i + PREFETCH_FRAMES] < b[0].len) {
            PREFETCH_AT(buf + aoff[i + PREFETCH_FRAMES]);
            PREFETCH_AT(buf + aoff[i + PREFETCH_FRAMES] + 64);
        }
        walk[i] = 0;
        if (!in_flow[i])
            continue;
        if (ftype[i] < 0 || ftype[i] >= ntypes) {
            PyErr_SetString(PyExc_IndexError, "messages: frame type out of range");
            goto done;
        }
        int64_t kind = kinds[ftype[i]], q = aoff[i], n = alen[i];
        if (kind < 0)
            continue;
        if (q < 0 || n < 0 || q > b[0].len || n > b[0].len - q) { /* q + n could overflow */
            walk[i] = 1;
            continue;
        }
        const uint8_t *p = buf + q;
        if (kind == CH10) {
            int64_t need = 2 + n / 24;
            if (need > MAX_PACKETS + 1) need = MAX_PACKETS + 1;
            if (cap - k < need)
                goto full;
            k += ch10(p, n, i, cols, k, &walk[i]);
            continue;
        }
        if (cap - k < 1)
            goto full;
        int64_t o = k;
        if (kind == IENA && n >= 16) {
            row_out(cols, o, i, 0, IENA);
            F(o, ID1) = be(p, 2); F(o, SEQ) = be(p + 12, 2); F(o, BITS) = 16; F(o, SIZE) = n;
            F(o, STATE) = ((int64_t)p[10] << 8) | p[11];
        } else if (kind == INETX && n >= 28) {
            row_out(cols, o, i, 0, INETX);
            F(o, ID1) = be(p + 4, 4); F(o, SEQ) = be(p + 8, 4); F(o, BITS) = 32; F(o, SIZE) = n;
            F(o, ERROR) = (be(p + 24, 4) & 0x84000000) != 0;
        } else if (kind == PTP && n >= 34) {
            int64_t mtype = p[0] & 0x0F, mlen = be(p + 2, 2);
            row_out(cols, o, i, 0, PTP);
            F(o, ID1) = p[4]; F(o, ID2) = mtype; F(o, ID3) = be(p + 20, 8); F(o, ID4) = be(p + 28, 2);
            F(o, SEQ) = be(p + 30, 2); F(o, BITS) = 16; F(o, SIZE) = mlen;
            if (mtype == 0x0) F(o, AUX) = (p[6] >> 1) & 1;
            else if (mtype == 0xB && mlen >= 63 && n >= 61) F(o, AUX) = be(p + 53, 8);
        } else if (kind == UDP_CONT && n >= 12) {
            if (p[0] == 0x11 && le(p + 8, 4) > 0) {
                row_out(cols, o, i, 0, CH10_UDP);
                F(o, ID1) = 1; F(o, SEQ) = le(p + 1, 3);
            } else if (p[3] == 0x12 && ((int64_t)p[4] << 16 | be(p + 8, 2)) > 0 &&
                       be(p + 5, 3) > ((int64_t)p[4] << 16 | be(p + 8, 2))) {  /* words */
                row_out(cols, o, i, 0, CH10_UDP);
                F(o, ID1) = 2; F(o, SEQ) = be(p, 3);
            } else {
                continue;
            }
            F(o, BITS) = 24; F(o, SIZE) = n; F(o, SEGMENT) = 2;
        } else if (kind == UDP_CONT) {
            continue;
        } else {
            walk[i] = 1;
            continue;
        }
        k++;
    }
full:
    result = Py_BuildValue("(Ln)", (long long)k, i);
done:
    for (int j = 0; j < 7; j++)
        if (b[j].obj) PyBuffer_Release(&b[j]);
    for (int j = 0; j < NCOL; j++)
        if (ob[j].obj) PyBuffer_Release(&ob[j]);
    return result;
}

/* the six products are independent (no chain of multiplies per message); the final
 * mixing spreads them into the low bits that pick the slot */
static inline uint64_t key_hash(const int64_t *const *col, Py_ssize_t i) {
    uint64_t h = (uint64_t)col[0][i] * 0x9E3779B97F4A7C15ULL ^
                 (uint64_t)col[1][i] * 0xC2B2AE3D27D4EB4FULL ^
                 (uint64_t)col[2][i] * 0x165667B19E3779F9ULL ^
                 (uint64_t)col[3][i] * 0xD6E8FEB86659FD93ULL ^
                 (uint64_t)col[4][i] * 0xFF51AFD7ED558CCDULL ^
                 (uint64_t)col[5][i] * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 32;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 29);
}

static PyObject *intern(PyObject *self, PyObject *args) {
    Py_buffer b[9];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*w*w*w*", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                          &b[6], &b[7], &b[8]))
        return NULL;
    PyObject *result = NULL;
    static const char *const names[9] = {"flow", "proto", "id1", "id2", "id3", "id4", "sid",
                                         "order", "count"};
    arg_t args_[9];
    for (int j = 0; j < 9; j++)
        args_[j] = (arg_t){&b[j], names[j], 8, j >= 6};
    if (check_args("intern", args_, 9) < 0)
        goto done;
    Py_ssize_t n = b[0].len / 8;
    for (int j = 1; j < 9; j++)
        if (b[j].len != n * 8) {
            PyErr_SetString(PyExc_ValueError, "intern: column lengths differ");
            goto done;
        }
    const int64_t *col[6];
    for (int j = 0; j < 6; j++) col[j] = b[j].buf;
    int64_t *sid = b[6].buf, *order = b[7].buf, *count = b[8].buf;
    /* a chunk has a few hundred streams, not one per message: a table that grows with the
     * streams stays in cache, where one sized for the messages would miss on every probe */
    Py_ssize_t size = 256;
    int64_t *table = PyMem_Malloc(size * sizeof(int64_t));
    if (table == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < size; i++) table[i] = -1;
    /* the first message of each stream, by stream id, is kept in order[] until the sort */
    int64_t nstreams = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t slot = (Py_ssize_t)(key_hash(col, i) & (uint64_t)(size - 1));
        for (;;) {
            int64_t s = table[slot];
            if (s < 0) {
                table[slot] = nstreams;
                order[nstreams] = i;
                count[nstreams] = 1;
                sid[i] = nstreams++;
                break;
            }
            int64_t f = order[s];
            int same = 1;
            for (int j = 0; j < 6 && same; j++) same = col[j][f] == col[j][i];
            if (same) {
                sid[i] = s;
                count[s]++;
                break;
            }
            slot = (slot + 1) & (size - 1);
        }
        if (2 * nstreams > size) { /* keep the load at most one half */
            int64_t *bigger = PyMem_Realloc(table, 2 * size * sizeof(int64_t));
            if (bigger == NULL) {
                PyMem_Free(table);
                PyErr_NoMemory();
                goto done;
            }
            table = bigger;
            size *= 2;
            for (Py_ssize_t t = 0; t < size; t++) table[t] = -1;
            for (int64_t s = 0; s < nstreams; s++) {
                Py_ssize_t t = (Py_ssize_t)(key_hash(col, order[s]) & (uint64_t)(size - 1));
                while (table[t] >= 0) t = (t + 1) & (size - 1);
                table[t] = s;
            }
        }
    }
    /* counting sort by stream id (stable), with table[] as the write positions */
    int64_t *pos = PyMem_Realloc(table, (nstreams + 1) * sizeof(int64_t));
    if (pos == NULL) {
        PyMem_Free(table);
        PyErr_NoMemory();
        goto done;
    }
    pos[0] = 0;
    for (int64_t s = 0; s < nstreams; s++) pos[s + 1] = pos[s] + count[s];
    for (Py_ssize_t i = 0; i < n; i++) order[pos[sid[i]]++] = i;
    PyMem_Free(pos);
    result = PyLong_FromLongLong(nstreams);
done:
    for (int j = 0; j < 9; j++)
        if (b[j].obj) PyBuffer_Release(&b[j]);
    return result;
}

static PyMethodDef methods[] = {
    {"messages", messages, METH_VARARGS, "Protocol messages of located payloads."},
    {"intern", intern, METH_VARARGS, "Stream ids in order of first appearance."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_messages", NULL, -1, methods};

PyMODINIT_FUNC PyInit__messages(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "NCOL", NCOL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

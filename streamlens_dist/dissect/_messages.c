/* Protocol messages of a chunk's frames in one compiled pass (optional: dissect/streams.py has
 * a numpy path and the per-frame definition `frame_messages`; tests/test_stream_messages.py
 * holds all three to the same output).
 *
 * messages(buf, rows, kind, app_off, app_len, out, walk) -> (messages written, rows consumed)
 *   buf      the chunk bytes
 *   rows     int64[m] frame rows (ascending), kind int64[m] (1 CH10, 2 PTP, 3 IENA, 4 INETX,
 *            5 UDP that may be a Chapter 10 segment continuation), app_off/app_len int64[m]
 *            where the classifier located each payload
 *   out      int64[NCOL * cap] messages, column-major (column c of message k at c * cap + k),
 *            columns as streams.MESSAGE_COLUMNS, in message order; the pass stops before the first row whose messages might not fit
 *            (a datagram of n bytes holds at most 2 + n / 24): call again for the rest
 *   walk     uint8[m] set to 1 for frames left to the per-frame path (a payload outside the
 *            buffer), 2 for Chapter 10 datagrams holding a TMATS packet: their messages are
 *            written, and Python extracts the text
 *
 * intern(flow, proto, id1, id2, id3, id4, sid, order, table) -> number of streams
 *   per message (int64 columns) its stream id in order of first appearance, and `order`: the
 *   messages sorted stably by stream id (a counting sort); table int64[2^k] work space
 *   (k with 2^k >= 2 * messages).
 *
 * runs(order, group, seq, bits, starts) -> number of runs
 *   over the messages in `order` (grouped by `group`, message order inside a group), the
 *   positions in `order` where a run of +1 steps (mod 2^bits) starts: a new group, or a step
 *   that is not +1.
 *
 * counts(sid, error, segment, errors, segments, continuations)
 *   per stream id: messages with an error flag, with segment > 0, with segment == 2.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

/* o points at message k of column 0; column c of it is o[c * cap] (the F macro, with the
 * output's capacity `cap` in scope) */
#define F(o, c) ((o)[(c) * cap])

static int64_t *row_out(int64_t *o, int64_t cap, int64_t row, int64_t pos, int64_t proto) {
    F(o, ROW) = row; F(o, POS) = pos; F(o, PROTO) = proto;
    F(o, ID1) = F(o, ID2) = F(o, ID3) = F(o, ID4) = 0;
    F(o, STATE) = -1; F(o, ERROR) = 0; F(o, SEGMENT) = 0; F(o, AUX) = -1;
    return o;
}

/* Messages of a Chapter 10 datagram; *tmats set when a packet is TMATS (data type 0x01). */
static int64_t ch10(const uint8_t *p, int64_t n, int64_t row, int64_t *out, int64_t cap,
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
    int64_t *t = row_out(out, cap, row, 0, CH10_UDP);
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
        int64_t *o = row_out(out + count, cap, row, count, CH10);
        F(o, ID1) = le(h + 2, 2);
        F(o, ID2) = h[15];
        F(o, SEQ) = h[13];
        F(o, BITS) = 8;
        F(o, SIZE) = le(h + 4, 4);
        F(o, ERROR) = (h[14] & 0x30) != 0;
        count++;
        if (!full) break;
        off += F(o, SIZE);
    }
    return count;
}

static PyObject *messages(PyObject *self, PyObject *args) {
    Py_buffer b[7];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*w*", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                          &b[6]))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t m = b[1].len / 8;
    if (b[2].len != m * 8 || b[3].len != m * 8 || b[4].len != m * 8 || b[6].len != m) {
        PyErr_SetString(PyExc_ValueError, "messages: column lengths differ");
        goto done;
    }
    const uint8_t *buf = b[0].buf;
    const int64_t *rows = b[1].buf, *kind = b[2].buf, *aoff = b[3].buf, *alen = b[4].buf;
    int64_t *out = b[5].buf;
    uint8_t *walk = b[6].buf;
    int64_t k = 0, cap = b[5].len / (8 * NCOL);
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t q = aoff[i], n = alen[i];
        walk[i] = 0;
        if (q < 0 || n < 0 || q + n > b[0].len) {
            walk[i] = 1;
            continue;
        }
        const uint8_t *p = buf + q;
        if (kind[i] == CH10) {
            int64_t need = 2 + n / 24;
            if (need > MAX_PACKETS + 1) need = MAX_PACKETS + 1;
            if (cap - k < need) {
                m = i;
                break;
            }
            k += ch10(p, n, rows[i], out + k, cap, &walk[i]);
            continue;
        }
        if (cap - k < 1) {
            m = i;
            break;
        }
        int64_t *o = out + k;
        if (kind[i] == IENA && n >= 16) {
            row_out(o, cap, rows[i], 0, IENA);
            F(o, ID1) = be(p, 2); F(o, SEQ) = be(p + 12, 2); F(o, BITS) = 16; F(o, SIZE) = n;
            F(o, STATE) = ((int64_t)p[10] << 8) | p[11];
        } else if (kind[i] == INETX && n >= 28) {
            row_out(o, cap, rows[i], 0, INETX);
            F(o, ID1) = be(p + 4, 4); F(o, SEQ) = be(p + 8, 4); F(o, BITS) = 32; F(o, SIZE) = n;
            F(o, ERROR) = (be(p + 24, 4) & 0x84000000) != 0;
        } else if (kind[i] == PTP && n >= 34) {
            int64_t mtype = p[0] & 0x0F, mlen = be(p + 2, 2);
            row_out(o, cap, rows[i], 0, PTP);
            F(o, ID1) = p[4]; F(o, ID2) = mtype; F(o, ID3) = be(p + 20, 8); F(o, ID4) = be(p + 28, 2);
            F(o, SEQ) = be(p + 30, 2); F(o, BITS) = 16; F(o, SIZE) = mlen;
            if (mtype == 0x0) F(o, AUX) = (p[6] >> 1) & 1;
            else if (mtype == 0xB && mlen >= 63 && n >= 61) F(o, AUX) = be(p + 53, 8);
        } else if (kind[i] == UDP_CONT && n >= 12) {
            if (p[0] == 0x11 && le(p + 8, 4) > 0) {
                row_out(o, cap, rows[i], 0, CH10_UDP);
                F(o, ID1) = 1; F(o, SEQ) = le(p + 1, 3);
            } else if (p[3] == 0x12 && ((int64_t)p[4] << 16 | be(p + 8, 2)) > 0 &&
                       be(p + 5, 3) > ((int64_t)p[4] << 16 | be(p + 8, 2))) {  /* words */
                row_out(o, cap, rows[i], 0, CH10_UDP);
                F(o, ID1) = 2; F(o, SEQ) = be(p, 3);
            } else {
                continue;
            }
            F(o, BITS) = 24; F(o, SIZE) = n; F(o, SEGMENT) = 2;
        } else if (kind[i] == UDP_CONT) {
            continue;
        } else {
            walk[i] = 1;
            continue;
        }
        k++;
    }
    result = Py_BuildValue("(Ln)", (long long)k, m);
done:
    for (int j = 0; j < 7; j++)
        if (b[j].obj) PyBuffer_Release(&b[j]);
    return result;
}

static inline uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return h * 0xBF58476D1CE4E5B9ULL;
}

static PyObject *intern(PyObject *self, PyObject *args) {
    Py_buffer b[9];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*w*w*w*", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                          &b[6], &b[7], &b[8]))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = b[0].len / 8, size = b[8].len / 8;
    for (int j = 1; j < 8; j++)
        if (b[j].len != n * 8) {
            PyErr_SetString(PyExc_ValueError, "intern: column lengths differ");
            goto done;
        }
    if (size < 2 * n || (size & (size - 1))) {
        PyErr_SetString(PyExc_ValueError, "intern: table must be a power of two >= 2n");
        goto done;
    }
    const int64_t *col[6];
    for (int j = 0; j < 6; j++) col[j] = b[j].buf;
    int64_t *sid = b[6].buf, *order = b[7].buf, *table = b[8].buf;
    for (Py_ssize_t i = 0; i < size; i++) table[i] = -1;
    /* the first message of each stream, by stream id, is kept in order[] until the sort */
    int64_t nstreams = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t h = 0;
        for (int j = 0; j < 6; j++) h = mix(h, (uint64_t)col[j][i]);
        Py_ssize_t slot = (Py_ssize_t)(h & (uint64_t)(size - 1));
        for (;;) {
            int64_t s = table[slot];
            if (s < 0) {
                table[slot] = nstreams;
                order[nstreams] = i;
                sid[i] = nstreams++;
                break;
            }
            int64_t f = order[s];
            int same = 1;
            for (int j = 0; j < 6 && same; j++) same = col[j][f] == col[j][i];
            if (same) {
                sid[i] = s;
                break;
            }
            slot = (slot + 1) & (size - 1);
        }
    }
    /* counting sort by stream id (stable); table[] is free again for the counts */
    int64_t *count = table;
    for (int64_t s = 0; s <= nstreams; s++) count[s] = 0;
    for (Py_ssize_t i = 0; i < n; i++) count[sid[i] + 1]++;
    for (int64_t s = 0; s < nstreams; s++) count[s + 1] += count[s];
    for (Py_ssize_t i = 0; i < n; i++) order[count[sid[i]]++] = i;
    result = PyLong_FromLongLong(nstreams);
done:
    for (int j = 0; j < 9; j++)
        if (b[j].obj) PyBuffer_Release(&b[j]);
    return result;
}

static PyObject *runs(PyObject *self, PyObject *args) {
    Py_buffer b[5];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*", &b[0], &b[1], &b[2], &b[3], &b[4]))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = b[0].len / 8, m = b[1].len / 8;
    if (b[2].len != m * 8 || b[3].len != m * 8 || b[4].len < n * 8) {
        PyErr_SetString(PyExc_ValueError, "runs: column lengths differ");
        goto done;
    }
    const int64_t *order = b[0].buf, *group = b[1].buf, *seq = b[2].buf, *bits = b[3].buf;
    int64_t *starts = b[4].buf, k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t j = order[i];
        if (j < 0 || j >= m) {
            PyErr_SetString(PyExc_IndexError, "runs: order out of range");
            goto done;
        }
        if (i == 0) {
            starts[k++] = 0;
            continue;
        }
        int64_t p = order[i - 1];
        uint64_t mask = bits[j] >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits[j]) - 1);
        if (group[j] != group[p] || (((uint64_t)seq[j] - (uint64_t)seq[p]) & mask) != 1)
            starts[k++] = i;
    }
    result = PyLong_FromLongLong(k);
done:
    for (int j = 0; j < 5; j++)
        if (b[j].obj) PyBuffer_Release(&b[j]);
    return result;
}

static PyObject *counts(PyObject *self, PyObject *args) {
    Py_buffer b[6];
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*w*w*w*", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = b[0].len / 8, k = b[3].len / 8;
    if (b[1].len != n * 8 || b[2].len != n * 8 || b[4].len != k * 8 || b[5].len != k * 8) {
        PyErr_SetString(PyExc_ValueError, "counts: column lengths differ");
        goto done;
    }
    const int64_t *sid = b[0].buf, *error = b[1].buf, *segment = b[2].buf;
    int64_t *errors = b[3].buf, *segments = b[4].buf, *cont = b[5].buf;
    for (Py_ssize_t s = 0; s < k; s++) errors[s] = segments[s] = cont[s] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t s = sid[i];
        if (s < 0 || s >= k) {
            PyErr_SetString(PyExc_IndexError, "counts: stream id out of range");
            goto done;
        }
        errors[s] += error[i] != 0;
        segments[s] += segment[i] > 0;
        cont[s] += segment[i] == 2;
    }
    result = Py_NewRef(Py_None);
done:
    for (int j = 0; j < 6; j++)
        if (b[j].obj) PyBuffer_Release(&b[j]);
    return result;
}

static PyMethodDef methods[] = {
    {"runs", runs, METH_VARARGS, "Starts of runs of +1 sequence steps."},
    {"counts", counts, METH_VARARGS, "Error, segment and continuation counts per stream."},
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

/* Small compiled kernels of the columnar dissector (optional: dissect/columnar.py has numpy
 * fallbacks that give identical results).
 *
 * nonprintable(data, starts, ends, out): for each i, the number of bytes of data[starts[i]:ends[i]]
 * that are not printable text (0x20..0x7E, TAB, LF, CR). starts/ends are int64 arrays, out an
 * int64 array of the same length; every range must lie inside data (checked).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static unsigned char NONPRINT[256];

static PyObject *nonprintable(PyObject *self, PyObject *args) {
    Py_buffer data, starts, ends, out;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &data, &starts, &ends, &out))
        return NULL;
    PyObject *result = NULL;
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

static PyMethodDef methods[] = {
    {"nonprintable", nonprintable, METH_VARARGS,
     "nonprintable(data, starts, ends, out): count non-printable bytes per range"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    for (int c = 0; c < 256; c++)
        NONPRINT[c] = !((c >= 0x20 && c <= 0x7E) || c == 9 || c == 10 || c == 13);
    return PyModule_Create(&module);
}

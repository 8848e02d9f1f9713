/* Optional C speed-ups for sansnet. Pure-Python fallbacks exist for everything here
 * (sansnet/protocol/websocket/_mask.py); this file only makes the hot loops faster.
 *
 * apply_mask(data, mask) -> bytes
 *     XOR ``data`` with the 4-byte WebSocket masking key ``mask`` repeated
 *     (RFC 6455 section 5.3). Masking and unmasking are the same operation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result;
    const unsigned char *in;
    unsigned char *out;
    Py_ssize_t i = 0, size;
    uint32_t key32;
    uint64_t key64;

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask() takes exactly 2 arguments (data, mask)");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the mask must be exactly 4 bytes");
        goto error;
    }
    size = data.len;
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        goto error;
    }
    in = (const unsigned char *)data.buf;
    out = (unsigned char *)PyBytes_AS_STRING(result);
    memcpy(&key32, mask.buf, 4);
    key64 = ((uint64_t)key32 << 32) | (uint64_t)key32;
    for (; i + 8 <= size; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, in + i, 8);
        chunk ^= key64;
        memcpy(out + i, &chunk, 8);
    }
    for (; i < size; i++) {
        out[i] = in[i] ^ ((const unsigned char *)mask.buf)[i & 3];
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;

error:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes: XOR data with the repeated 4-byte mask."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot speedups_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "sansnet.protocol._speedups",
    "Optional C speed-ups for sansnet (pure-Python fallbacks exist).",
    0,
    speedups_methods,
    speedups_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}

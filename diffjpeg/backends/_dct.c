/*
 * The real-valued 2-D DCT of 8x8 blocks, out = A X A^T, in one compiled
 * pass: float and soft mode's forward and inverse DCT (A = C or C^T, C the
 * orthonormal DCT-II matrix) and every mode's adjoints (dct.py).
 *
 * Why not a GEMM: a BLAS picks its kernels, blocking and thread split from
 * the matrix sizes and the CPU, so a block's sums came out in another order
 * (one unit in the last place) when the batch, the strip height or the
 * thread count changed, or on another CPU (AMD EPYC against Intel Xeon).
 * Here every output is summed in one fixed order that depends on nothing
 * but the block (_dct.h), each product and sum an IEEE operation of the
 * buffer's type (built with -ffp-contract=off), so the values are those of
 * dct.py's tensor form of the same steps, bit for bit, on every x86-64 or
 * other CPU, whatever the vector width (tests/test_dct_order.py).
 * Separable, it costs 16 multiply-adds per sample where the 64x64 GEMM of
 * the Kronecker matrix cost 64.
 *
 * Buffers: src and dst (P, BY, BX, 8, 8), float32 or float64, of one kind,
 * at any strides with each row of 8 contiguous: the blocks of planes as
 * split_blocks views them, so a transform reads a plane's blocks and writes
 * into a plane without a copy in between; dst must not overlap src. With
 * `shift`, X - shift (one IEEE subtraction, the level shift's) is what is
 * transformed. matrix: A as 64 values of the same kind, row-major.
 * Each call takes blocks [start, stop) (cpu.py shares them among
 * threads) and releases the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* HOT: AVX2 gives the eight sums of a row eight lanes at once (the values are the same) */
#include "_loops.h"

/* The blocks, their views and one block's transform: _dct.h (the block pass in _quantize.c sums in the same order) */
#include "_dct.h"

#define DEFINE_LOOP(T, SUFFIX, ROW)                                                                          \
    HOT static void transform_##SUFFIX(const Blocks *src, const Blocks *dst, const T *a, int shifted, T shift,  \
                                       Py_ssize_t start, Py_ssize_t stop)                                    \
    {                                                                                                        \
        T at[64];                                                                                            \
        transpose_##SUFFIX(a, at);                                                                           \
        Cursor c = cursor_at(src, start);                                                                    \
        for (Py_ssize_t n = start; n < stop; n++, cursor_next(src, &c)) {                                    \
            T x[64];                                                                                         \
            load_##SUFFIX(src, &c, x, shifted, shift);                                                       \
            block_2d_##SUFFIX(x, at, a, (char *)block_at(dst, &c), dst->row);                                \
        }                                                                                                    \
    }
DEFINE_LOOP(float, f32, row_f32)
DEFINE_LOOP(double, f64, row_f64)

static PyObject *block_transform(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *dst, *matrix, *shift_arg = Py_None;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OOOnn|O:block_transform", &src, &dst, &matrix, &start, &stop, &shift_arg)) return NULL;
    double shift = shift_arg == Py_None ? 0.0 : PyFloat_AsDouble(shift_arg);
    if (PyErr_Occurred()) return NULL;
    Py_buffer s, d, m;
    if (PyObject_GetBuffer(src, &s, PyBUF_RECORDS_RO) < 0) return NULL;
    if (PyObject_GetBuffer(dst, &d, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    if (PyObject_GetBuffer(matrix, &m, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&d);
        return NULL;
    }
    int kind = float_kind(&s);
    Blocks in, out;
    const char *s_lo, *s_hi, *d_lo, *d_hi;
    int ok = kind && float_kind(&m) == kind && m.len == 64 * m.itemsize && blocks_view(&s, kind, &in, &s_lo, &s_hi) &&
             blocks_view(&d, kind, &out, &d_lo, &d_hi);
    Py_ssize_t count = ok ? s.shape[0] * s.shape[1] * s.shape[2] : 0;
    if (ok)
        ok = s.shape[0] == d.shape[0] && s.shape[1] == d.shape[1] && s.shape[2] == d.shape[2] && start >= 0 && stop >= start && stop <= count;
    if (ok && count > 0) /* no overlap: the column pass writes dst while later blocks of src are still to be read */
        ok = d_hi <= s_lo || s_hi <= d_lo;
    if (!ok) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&d);
        PyBuffer_Release(&m);
        PyErr_SetString(PyExc_ValueError, "_dct: bad arguments");
        return NULL;
    }
    int shifted = shift_arg != Py_None;
    Py_BEGIN_ALLOW_THREADS
    if (kind == 2)
        transform_f64(&in, &out, (const double *)m.buf, shifted, shift, start, stop);
    else
        transform_f32(&in, &out, (const float *)m.buf, shifted, (float)shift, start, stop);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    PyBuffer_Release(&m);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"block_transform", block_transform, METH_VARARGS,
     "block_transform(src, dst, matrix, start, stop, shift=None): dst = A (X - shift) A^T for the 8x8 blocks X [start, stop) "
     "of src ((P, BY, BX, 8, 8), any strides, rows contiguous), A the 64 values of matrix (row-major), in a fixed order of IEEE "
     "products and sums."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dct", "Compiled loop of diffjpeg.stages.dct's real-valued block transform.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__dct(void) { return PyModule_Create(&module); }

/*
 * Samples rounded to 8 bits and clamped, in one compiled pass: float and
 * soft mode's clamp_ste (rounding.py) where it follows a scale or a level
 * shift, as the encoder's input (x 255), the color conversions and the
 * inverse DCT (+ 128) have it.
 *
 * The tensor operations it replaces are, in turn, x * scale, x + shift,
 * round (to nearest, ties to even: nearbyint in the default rounding mode),
 * clamp_(lo, hi); this loop performs the same IEEE operations in that
 * order on each element (built with -ffp-contract=off: no FMA fuses the
 * product and the sum), so its values are theirs, bit for bit
 * (tests/test_native_sampling.py). The clamp keeps a NaN and a -0.0, as
 * torch's clamp does (every comparison with NaN is false; -0.0 < 0.0 is false).
 *
 * With `within` (lo, hi) it also says whether every input value lies in
 * [lo, hi] (NaN lies nowhere): the codec's range check of its input image,
 * from the same read instead of a pass of its own (check.py).
 *
 * Buffers: (rows, n), float32 or float64, of one kind and shape, each row
 * contiguous, rows at any distance (the planes of a strip of a large
 * image); src may be dst (in place). Each call takes elements [start, stop)
 * of every row (native.py shares them among threads) and releases the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* HOT: AVX2 gives the loops vector rounding, which baseline x86-64 lacks */
#include "_loops.h"

#define DEFINE_LOOP(T, SUFFIX, RINT)                                                                                  \
    HOT static int round_clamp_##SUFFIX(const T *x, T *y, Py_ssize_t n, int has_scale, T scale, int has_shift, T shift,  \
                                    int rounded, T lo, T hi, int check, T low, T high)                                \
    {                                                                                                                 \
        int inside = 1; /* with check: every x in [low, high] */                                                      \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                          \
            T v = x[i];                                                                                               \
            if (check) inside &= (v >= low) & (v <= high);                                                            \
            if (has_scale) v = v * scale;                                                                             \
            if (has_shift) v = v + shift;                                                                             \
            if (rounded) v = RINT(v);                                                                                 \
            v = v < lo ? lo : v;                                                                                      \
            y[i] = v > hi ? hi : v;                                                                                   \
        }                                                                                                             \
        return inside;                                                                                                \
    }

DEFINE_LOOP(float, f32, nearbyintf)
DEFINE_LOOP(double, f64, nearbyint)

static PyObject *round_clamp(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *dst, *scale_arg, *shift_arg, *within = Py_None;
    int rounded;
    double lo, hi, low = 0.0, high = 0.0;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OOOOpddnn|O:round_clamp", &src, &dst, &scale_arg, &shift_arg, &rounded, &lo, &hi, &start, &stop, &within))
        return NULL;
    int check = within != Py_None;
    if (check && (!PyTuple_Check(within) || !PyArg_ParseTuple(within, "dd", &low, &high) || !(low <= high))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_rounding: within must be None or (lo, hi), lo <= hi");
        return NULL;
    }
    int has_scale = scale_arg != Py_None, has_shift = shift_arg != Py_None;
    double scale = has_scale ? PyFloat_AsDouble(scale_arg) : 1.0, shift = has_shift ? PyFloat_AsDouble(shift_arg) : 0.0;
    if (PyErr_Occurred()) return NULL;
    Py_buffer s, d;
    if (PyObject_GetBuffer(src, &s, PyBUF_RECORDS_RO) < 0) return NULL;
    if (PyObject_GetBuffer(dst, &d, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    int kind = float_kind(&s), ok = kind && float_kind(&d) == kind && s.ndim == 2 && d.ndim == 2 && (lo <= hi);
    if (ok) {
        ok = s.shape[0] == d.shape[0] && s.shape[1] == d.shape[1] && s.strides[1] == s.itemsize && d.strides[1] == d.itemsize &&
             s.strides[0] >= 0 && d.strides[0] >= 0 && s.strides[0] % s.itemsize == 0 && d.strides[0] % d.itemsize == 0 && start >= 0 &&
             stop >= start && stop <= s.shape[1];
    }
    if (!ok) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&d);
        PyErr_SetString(PyExc_ValueError, "_rounding: bad arguments");
        return NULL;
    }
    int inside = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < s.shape[0]; r++) {
        const char *x = (const char *)s.buf + r * s.strides[0];
        char *y = (char *)d.buf + r * d.strides[0];
        Py_ssize_t n = stop - start;
        if (kind == 2)
            inside &= round_clamp_f64((const double *)x + start, (double *)y + start, n, has_scale, scale, has_shift, shift, rounded, lo,
                                      hi, check, low, high);
        else  /* the range rounded to float32: check.py's ends, -1 and 2, are exact */
            inside &= round_clamp_f32((const float *)x + start, (float *)y + start, n, has_scale, (float)scale, has_shift, (float)shift,
                                      rounded, (float)lo, (float)hi, check, (float)low, (float)high);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    if (check) return PyBool_FromLong(inside);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"round_clamp", round_clamp, METH_VARARGS,
     "round_clamp(src, dst, scale, shift, rounded, lo, hi, start, stop, within=None): clamp(round(src * scale + shift), lo, hi) "
     "into dst, elements [start, stop) of each row; with within=(low, high), whether every src value lies in [low, high]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rounding", "Compiled loop of diffjpeg.stages.rounding's clamp to 8-bit samples.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rounding(void) { return PyModule_Create(&module); }

/*
 * What the compiled loops (_native.c, _sampling.c, _rounding.c, _color.c,
 * _dct.c, _quantize.c) share, in one place: which toolchains also compile a loop for
 * AVX2, and the float kinds of a Python buffer. Include after Python.h.
 */
#ifndef DIFFJPEG_LOOPS_H
#define DIFFJPEG_LOOPS_H

/* HOT: a function also compiled for AVX2 where the toolchain can (GCC 6 or
 * later, or Clang, on x86-64 Linux), the form picked at load time by the
 * CPU; DIFFJPEG_NO_AVX2 turns it off. Each file says what AVX2 gives its
 * loops; the values are the same either way. */
#if defined(__x86_64__) && defined(__linux__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 6)) && !defined(DIFFJPEG_NO_AVX2)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

/* 1 for a float32 buffer, 2 for float64, 0 otherwise */
static inline int float_kind(const Py_buffer *v)
{
    if (!v->format || v->format[1] != '\0') return 0;
    if (v->format[0] == 'f' && v->itemsize == 4) return 1;
    if (v->format[0] == 'd' && v->itemsize == 8) return 2;
    return 0;
}

#endif

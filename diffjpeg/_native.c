/*
 * The exact codec's values as one compiled loop per strip of MCU rows.
 *
 * It executes, strip by strip and block by block so that the data stays in
 * cache, the integer forms that the stage modules define and document; each
 * section names the module whose facts it follows:
 *
 *   color.py     fixed-point RGB <-> YCbCr           (constants passed in)
 *   sampling.py  biased downsampling, fancy upsampling
 *   dct.py       ISLOW passes as integer matrices + DESCALE (matrices passed in)
 *   quantize.py  libjpeg-turbo's reciprocal division
 *
 * native.py builds the constants from those modules and decides when this
 * path applies (CPU, libjpeg's color matrices, sampling ratios of 1 or 2);
 * tests/test_native.py checks it against the tensor stages bit for bit.
 * Values that would leave the int32 ranges proven below make a block take the
 * int64 route; nothing here can overflow or read outside its buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER)
#define restrict __restrict
#endif

/* The hot loops are also compiled for AVX2 (8 int32 lanes and a 32-bit
 * multiply, which SSE2 lacks) and picked at load time where the toolchain
 * supports it; the integer results are the same either way. */
#if defined(__x86_64__) && defined(__linux__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 6)) && !defined(DIFFJPEG_NO_AVX2)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

enum { KIND_U8 = 0, KIND_F32 = 1, KIND_F64 = 2 };

/* Rows of 8 int32 lanes (GCC and Clang vector extensions; the build needs
 * one of them). A scalar times a row broadcasts. */
typedef int32_t row8 __attribute__((vector_size(32)));
typedef int32_t row8_unaligned __attribute__((vector_size(32), aligned(4)));
#define LOAD8(p) (*(const row8_unaligned *)(p))
#define STORE8(p, x) (*(row8_unaligned *)(p) = (x))
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  /* always inlined: no call passes a row8 */
#endif
#define INLINE static inline __attribute__((always_inline))
INLINE row8 splat(int32_t x) { return (row8){x, x, x, x, x, x, x, x}; }
INLINE row8 clamp8(row8 x, int32_t lo, int32_t hi)
{
    row8 l = splat(lo), h = splat(hi), below = x < l, above = x > h;  /* lanes of 0 or -1 */
    x = (x & ~below) | (l & below);
    return (x & ~above) | (h & above);
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int mini(int a, int b) { return a < b ? a : b; }

/* DESCALE(x, n) = (x + 2**(n-1)) >> n, written out below as a rounding
 * constant in the accumulator and a shift; >> on negative ints is arithmetic
 * in every compiler Python supports (floor division, as dct.py's floor). */

/* ------------------------------------------------------------ color.py */
/* fix: 9 FIX()ed matrix entries (rows Y, Cb, Cr); add: the 3 rounding
 * offsets. JFIF's sums stay below 2**24, far inside int32. */
HOT static void rgb_to_ycbcr(const uint8_t *restrict rgb, size_t count, const int32_t *fix, const int32_t *add,
                         uint8_t *restrict y, uint8_t *restrict cb, uint8_t *restrict cr)
{
    const uint8_t *r = rgb, *g = rgb + count, *b = rgb + 2 * count;
    for (size_t i = 0; i < count; i++) {
        int32_t R = r[i], G = g[i], B = b[i];
        y[i] = (uint8_t)clampi((fix[0] * R + fix[1] * G + fix[2] * B + add[0]) >> 16, 0, 255);
        cb[i] = (uint8_t)clampi((fix[3] * R + fix[4] * G + fix[5] * B + add[1]) >> 16, 0, 255);
        cr[i] = (uint8_t)clampi((fix[6] * R + fix[7] * G + fix[8] * B + add[2]) >> 16, 0, 255);
    }
}

/* fix: FIX()ed matrix on (Y, Cb, Cr); add: ONE_HALF - fix @ (0, 128, 128). */
HOT static void ycbcr_to_rgb(const uint8_t *restrict y, const uint8_t *restrict cb, const uint8_t *restrict cr,
                         size_t count, const int32_t *fix, const int32_t *add, uint8_t *restrict rgb)
{
    uint8_t *r = rgb, *g = rgb + count, *b = rgb + 2 * count;
    for (size_t i = 0; i < count; i++) {
        int32_t Y = y[i], Cb = cb[i], Cr = cr[i];
        r[i] = (uint8_t)clampi((fix[0] * Y + fix[1] * Cb + fix[2] * Cr + add[0]) >> 16, 0, 255);
        g[i] = (uint8_t)clampi((fix[3] * Y + fix[4] * Cb + fix[5] * Cr + add[1]) >> 16, 0, 255);
        b[i] = (uint8_t)clampi((fix[6] * Y + fix[7] * Cb + fix[8] * Cr + add[2]) >> 16, 0, 255);
    }
}

/* ------------------------------------------------------------ 8-bit samples */
/* codec.encode: round(clamp(x * 255, 0, 255)), half to even, in x's dtype
 * (rint rounds half to even in the default rounding mode, which Python keeps). */
HOT static void samples_from_image(const void *image, int kind, size_t offset, size_t count, uint8_t *restrict out)
{
    if (kind == KIND_U8) {
        memcpy(out, (const uint8_t *)image + offset, count);
    } else if (kind == KIND_F32) {
        const float *restrict x = (const float *)image + offset;
        for (size_t i = 0; i < count; i++) {
            float v = rintf(x[i] * 255.0f);
            out[i] = (uint8_t)(int32_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
    } else {
        const double *restrict x = (const double *)image + offset;
        for (size_t i = 0; i < count; i++) {
            double v = rint(x[i] * 255.0);
            out[i] = (uint8_t)(int32_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
        }
    }
}

/* ------------------------------------------------------------ sampling.py, blocks.py */
/* Work goes in strips of MCU rows (v_max * 8 full-resolution rows), so that
 * one image can be shared among threads; a strip's buffers hold only its
 * rows. The index arithmetic below keeps every row it reads inside the strip
 * (see the encoder and decoder); row_in clamps anyway, so that no mistake
 * can read outside a buffer. */
static inline const uint8_t *row_in(const uint8_t *rows, int first, int count, int stride, int row)
{
    int r = clampi(row - first, 0, count - 1);
    return rows + (size_t)r * stride;
}

/* Rows [g0, g1) of one component's block grid: the full-resolution plane
 * (h x w) repeated out to `padded`, averaged over sh x sv windows with
 * libjpeg's biases, its last row repeated down to the grid (codec.encode's
 * replicate_edges / downsample / replicate_edges). `plane` holds the
 * full-resolution rows [y0, y0 + rows); `grid` receives rows g0.. */
static void downsample_to_grid(const uint8_t *plane, int y0, int rows, int h, int w, const int32_t *geo,
                               int g0, int g1, uint8_t *grid)
{
    int sh = geo[0], sv = geo[1], down_h = geo[2] / sv, cols = geo[5] * 8;
    for (int i = g0; i < g1; i++) {
        int di = mini(i, down_h - 1);
        uint8_t *out = grid + (size_t)(i - g0) * cols;
        const uint8_t *r0 = row_in(plane, y0, rows, w, mini(di * sv, h - 1));
        const uint8_t *r1 = row_in(plane, y0, rows, w, mini(di * sv + sv - 1, h - 1));
        if (sh == 1 && sv == 1) {
            int n = mini(cols, w);
            memcpy(out, r0, (size_t)n);
            memset(out + n, r0[w - 1], (size_t)(cols - n));
            continue;
        }
        for (int j = 0; j < cols; j++) {
            int c0 = mini(j * sh, w - 1), c1 = mini(j * sh + sh - 1, w - 1);
            if (sh == 2 && sv == 2)  /* bias 1, 2, 1, 2, ... */
                out[j] = (uint8_t)((r0[c0] + r0[c1] + r1[c0] + r1[c1] + 1 + (j & 1)) >> 2);
            else if (sh == 2)        /* h2v1: bias 0, 1, 0, 1, ... */
                out[j] = (uint8_t)((r0[c0] + r0[c1] + (j & 1)) >> 1);
            else                     /* h1v2: int_downsample, bias 1 */
                out[j] = (uint8_t)((r0[c0] + r1[c0] + 1) >> 1);
        }
    }
}

/* Output rows [y0, y1) (of w samples) of the upsampled plane, from the
 * downsampled plane (dh x dw) whose rows [g0, g0 + grid_rows) are in `grid`
 * (row stride `stride`); see sampling.py for the filters and biases.
 * Returns 0 if this ratio is not handled here. */
HOT static int upsample(const uint8_t *grid, int g0, int grid_rows, int stride, int dh, int dw, int sh, int sv,
                        int y0, int y1, int w, uint8_t *out, int32_t *colsum)
{
    int fancy_h = sh == 2 && dw > 2;
    if (sh > 2 || sv > 2) return 0;
    for (int i = y0; i < y1; i++) {
        uint8_t *o = out + (size_t)(i - y0) * w;
        int si = i / sv;
        const uint8_t *x = row_in(grid, g0, grid_rows, stride, si);
        if (sv == 1 && sh == 1) {
            memcpy(o, x, (size_t)w);
        } else if (sv == 2 && (sh == 2 ? fancy_h : 1)) {
            /* column sums 3 * nearer row + farther row (edge rows repeated) */
            int far = (i & 1) ? mini(si + 1, dh - 1) : (si > 0 ? si - 1 : 0);
            const uint8_t *f = row_in(grid, g0, grid_rows, stride, far);
            if (sh == 1) {  /* h1v2: (3 x + far + 1 or 2) >> 2 */
                int bias = (i & 1) ? 2 : 1;
                for (int j = 0; j < w; j++)
                    o[j] = (uint8_t)((3 * x[j] + f[j] + bias) >> 2);
                continue;
            }
            for (int j = 0; j < dw; j++)
                colsum[j] = 3 * x[j] + f[j];
            /* h2v2: (3 s[j] + s[j-1] + 8) >> 4, (3 s[j] + s[j+1] + 7) >> 4 */
            for (int j = 0; j < dw; j++) {
                int32_t near3 = 3 * colsum[j];
                int32_t left = colsum[j > 0 ? j - 1 : 0], right = colsum[j + 1 < dw ? j + 1 : dw - 1];
                if (2 * j < w) o[2 * j] = (uint8_t)((near3 + left + 8) >> 4);
                if (2 * j + 1 < w) o[2 * j + 1] = (uint8_t)((near3 + right + 7) >> 4);
            }
        } else if (sv == 1 && fancy_h) {
            /* h2v1: (3 x[j] + x[j-1] + 1) >> 2, (3 x[j] + x[j+1] + 2) >> 2 */
            for (int j = 0; j < dw; j++) {
                int32_t near3 = 3 * x[j];
                int32_t left = x[j > 0 ? j - 1 : 0], right = x[j + 1 < dw ? j + 1 : dw - 1];
                if (2 * j < w) o[2 * j] = (uint8_t)((near3 + left + 1) >> 2);
                if (2 * j + 1 < w) o[2 * j + 1] = (uint8_t)((near3 + right + 2) >> 2);
            }
        } else {  /* replication (narrow planes) */
            for (int j = 0; j < w; j++)
                o[j] = x[j / sh];
        }
    }
    return 1;
}

/* ------------------------------------------------------------ dct.py, quantize.py */
/* Forward ISLOW on one block of level-shifted samples (|s| <= 128): rows
 * then columns, DESCALE by 11 then 15. Row sums of |A| are 65536 (dct.py's
 * _butterfly(False)), so pass 1 sums stay below 2**23 and pass 2 below 2**29.
 * AT is A transposed. Each pass is rows of 8 lanes times broadcast scalars. */
HOT static void fdct_islow(const int32_t *restrict s, const int32_t *restrict A, const int32_t *restrict AT,
                           int32_t *restrict out)
{
    row8 rows[8];
    for (int r = 0; r < 8; r++) {  /* S A^T: row r is sum_k s[r][k] (A^T)_k */
        row8 acc = splat(1 << 10);
        for (int k = 0; k < 8; k++) acc += s[r * 8 + k] * LOAD8(AT + k * 8);
        rows[r] = acc >> 11;
    }
    for (int v = 0; v < 8; v++) {  /* A rows */
        row8 acc = splat(1 << 14);
        for (int j = 0; j < 8; j++) acc += A[v * 8 + j] * rows[j];
        STORE8(out + v * 8, acc >> 15);
    }
}

/* quantize.py's reciprocal_divide constants for divisor d >= 2. */
typedef struct { uint64_t q, c; int r; } Reciprocal;

static Reciprocal compute_reciprocal(int64_t d)
{
    int b = 0;
    while (((int64_t)1 << (b + 1)) <= d) b++;
    int r = 16 + b;
    int64_t two_r = (int64_t)1 << r, q = two_r / d, rem = two_r % d, c = d / 2;
    if (rem == 0) { q /= 2; r -= 1; }
    else if (rem <= c) c += 1;
    else q += 1;
    Reciprocal out = {(uint64_t)q, (uint64_t)c, r};
    return out;
}

/* quantize.py's ((|x| + c) * q) >> r. With table entries <= 255 (d <= 2040),
 * |x| <= 8192 + rounding, c <= 1021 and q <= 2**16 + 1: below 2**31. */
HOT static void quantize_block(const int32_t *restrict f, const uint32_t *restrict q, const uint32_t *restrict c,
                               const uint32_t *restrict r, float *restrict out)
{
    for (int k = 0; k < 64; k++) {  /* branch-free, so that it vectorizes */
        int32_t sign = f[k] >> 31;  /* 0 or -1 */
        uint32_t magnitude = (uint32_t)((f[k] ^ sign) - sign);
        int32_t m = (int32_t)(((magnitude + c[k]) * q[k]) >> r[k]);
        out[k] = (float)((m ^ sign) - sign);  /* an int: never -0.0, as quantize.py */
    }
}

/* codec.decode: round half to even, then times the table entry. Returns 1
 * if a value needs int64 (|v| > 32767; v64 holds them), 0 if v holds them
 * all, -1 for a value that is not finite or beyond 2**35, where the tensor
 * path's float64 sums stop being exact integers (hostile input: left to it). */
HOT static int dequantize_block(const void *src, int kind, size_t at, const int32_t *restrict table,
                                int32_t *restrict v, int64_t *restrict v64)
{
    double d[64];
    int over = 0, big = 0;
    if (kind == KIND_F32) {
        const float *restrict x = (const float *)src + at;
        for (int k = 0; k < 64; k++) d[k] = rint((double)x[k]) * (double)table[k];
    } else {
        const double *restrict x = (const double *)src + at;
        for (int k = 0; k < 64; k++) d[k] = rint(x[k]) * (double)table[k];
    }
    for (int k = 0; k < 64; k++) {  /* flags, not a max: they vectorize */
        double a = fabs(d[k]);
        over |= !(a < 34359738368.0);  /* NaN too */
        big |= a > 32767.0;
    }
    if (over) return -1;
    if (big) {
        for (int k = 0; k < 64; k++) v64[k] = (int64_t)d[k];
        return 1;
    }
    for (int k = 0; k < 64; k++) v[k] = (int32_t)d[k];
    return 0;
}

/* Inverse ISLOW (dct.py's idct_islow): columns, DESCALE 11, saturate to int16
 * (packssdw); rows, DESCALE 18, saturate to [-128, 127], + 128. Row sums of
 * |M| are 61214: pass 2 on int16 stays below 2**31, and pass 1 does while
 * |coefficient| <= 32767; larger ones (`wide`) take int64. MT is M transposed. */
HOT static void idct_islow(const int32_t *restrict v, const int64_t *restrict v64, int wide, const int32_t *restrict M,
                           const int32_t *restrict MT, uint8_t *restrict out, int out_stride)
{
    int32_t ws[64];
    for (int i = 0; i < 8; i++) {  /* M V */
        if (wide) {
            for (int k = 0; k < 8; k++) {
                int64_t acc = (int64_t)1 << 10;
                for (int j = 0; j < 8; j++) acc += (int64_t)M[i * 8 + j] * v64[j * 8 + k];
                acc >>= 11;
                ws[i * 8 + k] = (int32_t)(acc < -32768 ? -32768 : acc > 32767 ? 32767 : acc);
            }
            continue;
        }
        row8 acc = splat(1 << 10);
        for (int j = 0; j < 8; j++) acc += M[i * 8 + j] * LOAD8(v + j * 8);
        STORE8(ws + i * 8, clamp8(acc >> 11, -32768, 32767));
    }
    for (int i = 0; i < 8; i++) {  /* W M^T: row i is sum_j w[i][j] (M^T)_j */
        row8 acc = splat(1 << 17);
        for (int j = 0; j < 8; j++) acc += ws[i * 8 + j] * LOAD8(MT + j * 8);
        row8 sample = clamp8(acc >> 18, -128, 127) + 128;
        for (int k = 0; k < 8; k++) out[i * out_stride + k] = (uint8_t)sample[k];
    }
}

/* ------------------------------------------------------------ buffers */
typedef struct {
    Py_buffer view;
    int held;
} Buffer;

static int get_buffer(PyObject *obj, Buffer *b, int writable, const char *name, Py_ssize_t need)
{
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    b->held = 1;
    if (b->view.len < need) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, needs %zd", name, b->view.len, need);
        return -1;
    }
    return 0;
}

static void release(Buffer *b, int n)
{
    for (int i = 0; i < n; i++)
        if (b[i].held) PyBuffer_Release(&b[i].view);
}

static inline void store(void *out, int kind, size_t index, double value)
{
    if (kind == KIND_F32) ((float *)out)[index] = (float)value;
    else ((double *)out)[index] = value;
}

/* ------------------------------------------------------------ strips */
/* items: int32 (k, 3) rows (image, first MCU row, end MCU row), read from
 * `b` into *items and *k. Returns the largest strip height in
 * full-resolution rows, or -1 (with ValueError) if an item is out of range. */
static int check_items(const Buffer *b, int n, int h, int mcu_h, const int32_t **items_out, Py_ssize_t *k_out)
{
    const int32_t *items = (const int32_t *)b->view.buf;
    Py_ssize_t k = b->view.len / (3 * (Py_ssize_t)sizeof(int32_t));
    *items_out = items, *k_out = k;
    int mcu_rows = (h + mcu_h - 1) / mcu_h, most = 0;
    for (Py_ssize_t t = 0; t < k; t++) {
        const int32_t *it = items + 3 * t;
        if (it[0] < 0 || it[0] >= n || it[1] < 0 || it[1] >= it[2] || it[2] > mcu_rows) {
            PyErr_SetString(PyExc_ValueError, "items: (image, first MCU row, end MCU row) out of range");
            return -1;
        }
        int rows = mini(it[2] * mcu_h, h) - it[1] * mcu_h;
        if (rows > most) most = rows;
    }
    return most;
}

/* ------------------------------------------------------------ encode */
/* encode(image, kind, n, channels, h, w, constants, tables, geometry, items, outputs, dct_outputs, out_kind)
 *   image: (n, channels, h, w) uint8 / float32 / float64
 *   constants: int32 [9 color FIX, 3 color offsets, forward ISLOW matrix (64), its transpose (64)]
 *   tables: int32 (n, 2, 64) quantization tables, entries in 1..255
 *   geometry: int32 (channels, 7): scale h, v, padded h, w, blocks h, w, table
 *   items: int32 (k, 3): the strips to encode (see check_items)
 *   outputs: one writable buffer per component, (n, blocks h, blocks w, 8, 8):
 *     the quantized blocks, in `out_kind`
 *   dct_outputs: None, or buffers as `outputs` for the DCT coefficients before
 *     quantization (ISLOW / 8, dct.py's fdct): what the gradient needs
 *
 * A strip of MCU rows [m0, m1) reads only the image rows [y0, y1) =
 * [m0 * mcu_h, min(m1 * mcu_h, h)): a component's block rows there are
 * [m0 v, m1 v) with v = v_max / scale v, its grid rows times its scale v
 * start at y0, and rows past y1 only occur in the last strip, where they are
 * clamped to h - 1 < y1.
 */
static PyObject *native_encode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *image_obj, *constants_obj, *tables_obj, *geometry_obj, *items_obj, *outputs, *dct_outputs;
    int kind, n, channels, h, w, out_kind;
    if (!PyArg_ParseTuple(args, "OiiiiiOOOOOOi", &image_obj, &kind, &n, &channels, &h, &w, &constants_obj,
                          &tables_obj, &geometry_obj, &items_obj, &outputs, &dct_outputs, &out_kind))
        return NULL;
    int with_dct = dct_outputs != Py_None;
    if (!PyTuple_Check(outputs) || PyTuple_GET_SIZE(outputs) != channels || (channels != 1 && channels != 3) ||
        (with_dct && (!PyTuple_Check(dct_outputs) || PyTuple_GET_SIZE(dct_outputs) != channels)) ||
        n < 0 || h < 1 || w < 1 || kind < 0 || kind > 2 || (out_kind != KIND_F32 && out_kind != KIND_F64)) {
        PyErr_SetString(PyExc_ValueError, "encode: bad arguments");
        return NULL;
    }
    size_t pixels = (size_t)h * w, item = kind == KIND_U8 ? 1 : kind == KIND_F32 ? 4 : 8;
    size_t out_item = out_kind == KIND_F32 ? 4 : 8;
    Buffer buf[11];
    memset(buf, 0, sizeof buf);
    if (get_buffer(image_obj, &buf[0], 0, "image", (Py_ssize_t)(n * channels * pixels * item)) < 0 ||
        get_buffer(constants_obj, &buf[1], 0, "constants", 140 * 4) < 0 ||
        get_buffer(tables_obj, &buf[2], 0, "tables", (Py_ssize_t)n * 128 * 4) < 0 ||
        get_buffer(geometry_obj, &buf[3], 0, "geometry", channels * 7 * 4) < 0 ||
        get_buffer(items_obj, &buf[10], 0, "items", 0) < 0) {
        release(buf, 11);
        return NULL;
    }
    const int32_t *geometry = (const int32_t *)buf[3].view.buf;
    size_t blocks[3];
    int v_max = 1, cols_max = 8;
    for (int c = 0; c < channels; c++) {
        const int32_t *g = geometry + 7 * c;
        if (g[0] < 1 || g[0] > 2 || g[1] < 1 || g[1] > 2 || g[2] < g[1] || g[2] % g[1] || g[4] < 1 || g[5] < 1 ||
            g[3] != g[5] * 8 * g[0] || g[6] < 0 || g[6] > 1) {
            release(buf, 11);
            PyErr_SetString(PyExc_ValueError, "encode: bad geometry");
            return NULL;
        }
        blocks[c] = (size_t)g[4] * g[5];
        v_max = g[1] > v_max ? g[1] : v_max;
        cols_max = g[5] * 8 > cols_max ? g[5] * 8 : cols_max;
        if (get_buffer(PyTuple_GET_ITEM(outputs, c), &buf[4 + c], 1, "output", (Py_ssize_t)(n * blocks[c] * 64 * out_item)) < 0 ||
            (with_dct && get_buffer(PyTuple_GET_ITEM(dct_outputs, c), &buf[7 + c], 1, "dct output", (Py_ssize_t)(n * blocks[c] * 64 * out_item)) < 0)) {
            release(buf, 11);
            return NULL;
        }
    }
    const void *image = buf[0].view.buf;
    const int32_t *constants = (const int32_t *)buf[1].view.buf;
    const int32_t *tables = (const int32_t *)buf[2].view.buf;
    for (size_t k = 0; k < (size_t)n * 128; k++)
        if (tables[k] < 1 || tables[k] > 255) {
            release(buf, 11);
            PyErr_SetString(PyExc_ValueError, "encode: quantization table entries must be in 1..255");
            return NULL;
        }
    const int32_t *items;
    Py_ssize_t n_items;
    int mcu_h = v_max * 8, strip_max = check_items(&buf[10], n, h, mcu_h, &items, &n_items);
    if (strip_max < 0) {
        release(buf, 11);
        return NULL;
    }
    size_t strip = (size_t)strip_max * w;
    /* a strip's grid rows: its own rows, and under 8 more where the last
     * block row runs past the image */
    uint8_t *scratch = malloc(2 * channels * strip + ((size_t)strip_max + 16) * cols_max + 1);
    if (!scratch) {
        release(buf, 11);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    uint8_t *planes = scratch, *rgb = scratch + channels * strip, *grid = rgb + channels * strip;
    for (Py_ssize_t t = 0; t < n_items; t++) {
        int i = items[3 * t], m0 = items[3 * t + 1], m1 = items[3 * t + 2];
        int y0 = m0 * mcu_h, rows = mini(m1 * mcu_h, h) - y0;
        size_t count = (size_t)rows * w;
        for (int ch = 0; ch < channels; ch++)
            samples_from_image(image, kind, ((size_t)i * channels + ch) * pixels + (size_t)y0 * w, count,
                               (channels == 3 ? rgb : planes) + ch * count);
        if (channels == 3)
            rgb_to_ycbcr(rgb, count, constants, constants + 9, planes, planes + count, planes + 2 * count);
        for (int c = 0; c < channels; c++) {
            const int32_t *g = geometry + 7 * c;
            int v = v_max / g[1], b0 = m0 * v, b1 = mini(m1 * v, g[4]);
            if (b0 >= b1) continue;
            downsample_to_grid(planes + c * count, y0, rows, h, w, g, b0 * 8, b1 * 8, grid);
            const int32_t *table = tables + (size_t)i * 128 + 64 * g[6];
            uint32_t rq[64], rc[64], rr[64];
            for (int k = 0; k < 64; k++) {
                Reciprocal rec = compute_reciprocal(8 * (int64_t)table[k]);
                rq[k] = (uint32_t)rec.q, rc[k] = (uint32_t)rec.c, rr[k] = (uint32_t)rec.r;
            }
            int cols = g[5] * 8;
            size_t base = (size_t)i * blocks[c] * 64;
            for (int by = b0; by < b1; by++)
                for (int bx = 0; bx < g[5]; bx++) {
                    int32_t sm[64], f[64];
                    float qv[64];
                    const uint8_t *src = grid + (size_t)(by - b0) * 8 * cols + bx * 8;
                    for (int r = 0; r < 8; r++)
                        for (int k = 0; k < 8; k++) sm[r * 8 + k] = (int32_t)src[r * cols + k] - 128;
                    fdct_islow(sm, constants + 12, constants + 76, f);
                    quantize_block(f, rq, rc, rr, qv);
                    size_t at = base + ((size_t)by * g[5] + bx) * 64;
                    if (with_dct)
                        for (int k = 0; k < 64; k++) store(buf[7 + c].view.buf, out_kind, at + k, f[k] * 0.125);
                    if (out_kind == KIND_F32) {
                        memcpy((float *)buf[4 + c].view.buf + at, qv, sizeof qv);
                    } else {
                        double *o = (double *)buf[4 + c].view.buf + at;
                        for (int k = 0; k < 64; k++) o[k] = (double)qv[k];
                    }
                }
        }
    }
    Py_END_ALLOW_THREADS
    free(scratch);
    release(buf, 11);
    Py_RETURN_NONE;
}

/* codec.decode's samples / 255 in the output dtype (a true division, as
 * torch's), or the samples themselves (codec.jpeg on uint8 images). */
HOT static void to_unit_range(const uint8_t *restrict samples, size_t count, void *out, int kind, size_t at)
{
    if (kind == KIND_U8) {
        memcpy((uint8_t *)out + at, samples, count);
    } else if (kind == KIND_F32) {
        float *restrict o = (float *)out + at;
        for (size_t k = 0; k < count; k++) o[k] = (float)samples[k] / 255.0f;
    } else {
        double *restrict o = (double *)out + at;
        for (size_t k = 0; k < count; k++) o[k] = (double)samples[k] / 255.0;
    }
}

/* ------------------------------------------------------------ decode */
/* decode(components, kind, n, h, w, constants, tables, geometry, items, out, out_kind)
 *   components: tuple of buffers (n, blocks h, blocks w, 8, 8), float32/float64 (`kind`)
 *   constants: int32 [9 color FIX, 3 offsets, inverse ISLOW matrix (64), its transpose (64)]
 *   tables: int32 (n, channels, 64), each component's table
 *   geometry: int32 (channels, 6): scale h, v, downsampled h, w, blocks h, w
 *   items: int32 (k, 3): the strips to decode (see check_items)
 *   out: (n, channels, h, w) float32/float64 (`out_kind`): samples / 255; or uint8: the samples
 * Output rows [y0, y1) of a strip need downsampled rows [y0 / v, (y1 - 1) / v]
 * and, for fancy upsampling in v, one more on each side (clamped to the
 * plane): the strip decodes the block rows that hold them, its neighbours'
 * edge rows included.
 * Returns False, having written nothing meaningful, if a coefficient is not
 * finite or too large for exact int64 arithmetic: the caller then decodes
 * with the tensor path, which defines those cases.
 */
static PyObject *native_decode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *components, *constants_obj, *tables_obj, *geometry_obj, *items_obj, *out_obj;
    int kind, n, h, w, out_kind;
    if (!PyArg_ParseTuple(args, "OiiiiOOOOOi", &components, &kind, &n, &h, &w, &constants_obj, &tables_obj,
                          &geometry_obj, &items_obj, &out_obj, &out_kind))
        return NULL;
    int channels = PyTuple_Check(components) ? (int)PyTuple_GET_SIZE(components) : 0;
    if ((channels != 1 && channels != 3) || n < 0 || h < 1 || w < 1 || (kind != KIND_F32 && kind != KIND_F64) ||
        out_kind < KIND_U8 || out_kind > KIND_F64) {
        PyErr_SetString(PyExc_ValueError, "decode: bad arguments");
        return NULL;
    }
    size_t pixels = (size_t)h * w, item = kind == KIND_F32 ? 4 : 8;
    size_t out_item = out_kind == KIND_U8 ? 1 : out_kind == KIND_F32 ? 4 : 8;
    Buffer buf[9];
    memset(buf, 0, sizeof buf);
    if (get_buffer(constants_obj, &buf[0], 0, "constants", 140 * 4) < 0 ||
        get_buffer(tables_obj, &buf[1], 0, "tables", (Py_ssize_t)n * channels * 64 * 4) < 0 ||
        get_buffer(geometry_obj, &buf[2], 0, "geometry", channels * 6 * 4) < 0 ||
        get_buffer(out_obj, &buf[3], 1, "out", (Py_ssize_t)(n * channels * pixels * out_item)) < 0 ||
        get_buffer(items_obj, &buf[8], 0, "items", 0) < 0) {
        release(buf, 9);
        return NULL;
    }
    const int32_t *geometry = (const int32_t *)buf[2].view.buf;
    size_t blocks[3], dw_max = 1, cols_max = 8;
    int v_max = 1;
    for (int c = 0; c < channels; c++) {
        const int32_t *g = geometry + 6 * c;
        if (g[0] < 1 || g[0] > 2 || g[1] < 1 || g[1] > 2 || g[2] < 1 || g[3] < 1 || g[4] * 8 < g[2] ||
            g[5] * 8 < g[3] || (size_t)g[2] * g[1] < (size_t)h || (size_t)g[3] * g[0] < (size_t)w) {
            release(buf, 9);
            PyErr_SetString(PyExc_ValueError, "decode: bad geometry");
            return NULL;
        }
        blocks[c] = (size_t)g[4] * g[5];
        if ((size_t)g[3] > dw_max) dw_max = g[3];
        if ((size_t)g[5] * 8 > cols_max) cols_max = (size_t)g[5] * 8;
        v_max = g[1] > v_max ? g[1] : v_max;
        if (get_buffer(PyTuple_GET_ITEM(components, c), &buf[4 + c], 0, "component", (Py_ssize_t)(n * blocks[c] * 64 * item)) < 0) {
            release(buf, 9);
            return NULL;
        }
    }
    const int32_t *constants = (const int32_t *)buf[0].view.buf, *tables = (const int32_t *)buf[1].view.buf;
    const int32_t *items;
    Py_ssize_t n_items;
    int mcu_h = v_max * 8, strip_max = check_items(&buf[8], n, h, mcu_h, &items, &n_items);
    if (strip_max < 0) {
        release(buf, 9);
        return NULL;
    }
    size_t strip = (size_t)strip_max * w;
    /* a strip's grid: its downsampled rows, one more each side, rounded out to blocks */
    size_t grid_rows = (size_t)strip_max + 2 + 16;
    uint8_t *scratch = malloc(dw_max * sizeof(int32_t) + grid_rows * cols_max + 2 * channels * strip + 1);
    if (!scratch) {
        release(buf, 9);
        return PyErr_NoMemory();
    }
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    int32_t *colsum = (int32_t *)scratch;  /* first: malloc's alignment */
    uint8_t *grid = scratch + dw_max * sizeof(int32_t), *planes = grid + grid_rows * cols_max;
    uint8_t *rgb = planes + channels * strip;
    void *out = buf[3].view.buf;
    for (Py_ssize_t t = 0; t < n_items && ok; t++) {
        int i = items[3 * t], m0 = items[3 * t + 1], m1 = items[3 * t + 2];
        int y0 = m0 * mcu_h, y1 = mini(m1 * mcu_h, h);
        size_t count = (size_t)(y1 - y0) * w;
        for (int c = 0; c < channels && ok; c++) {
            const int32_t *g = geometry + 6 * c, *table = tables + ((size_t)i * channels + c) * 64;
            int sh = g[0], sv = g[1], dh = g[2], cols = g[5] * 8;
            int d0 = y0 / sv, d1 = (y1 - 1) / sv;
            if (sv == 2) d0 = d0 > 0 ? d0 - 1 : 0, d1 = mini(d1 + 1, dh - 1);
            int b0 = d0 / 8, b1 = d1 / 8 + 1;
            const char *src = (const char *)buf[4 + c].view.buf + (size_t)i * blocks[c] * 64 * item;
            for (int by = b0; by < b1 && ok; by++)
                for (int bx = 0; bx < g[5]; bx++) {
                    int32_t v[64];
                    int64_t v64[64];
                    size_t b = (size_t)by * g[5] + bx;
                    int wide = dequantize_block(src, kind, b * 64, table, v, v64);
                    if (wide < 0) {
                        ok = 0;
                        break;
                    }
                    idct_islow(v, v64, wide, constants + 12, constants + 76, grid + (size_t)(by - b0) * 8 * cols + bx * 8, cols);
                }
            if (ok && !upsample(grid, b0 * 8, (b1 - b0) * 8, cols, dh, g[3], sh, sv, y0, y1, w, planes + c * count, colsum))
                ok = 0;  /* not reached: native.py sends ratios 1 and 2 only */
        }
        if (!ok) break;
        const uint8_t *samples = planes;
        if (channels == 3) {
            ycbcr_to_rgb(planes, planes + count, planes + 2 * count, count, constants, constants + 9, rgb);
            samples = rgb;
        }
        for (int ch = 0; ch < channels; ch++)
            to_unit_range(samples + ch * count, count, out, out_kind, ((size_t)i * channels + ch) * pixels + (size_t)y0 * w);
    }
    Py_END_ALLOW_THREADS
    free(scratch);
    release(buf, 9);
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"encode", native_encode, METH_VARARGS, "Exact no-gradient encode of a batch (see diffjpeg/native.py)."},
    {"decode", native_decode, METH_VARARGS, "Exact no-gradient decode of a batch (see diffjpeg/native.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_native", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }

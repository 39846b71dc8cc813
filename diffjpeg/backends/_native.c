/*
 * The exact codec's values as one compiled loop per strip of MCU rows.
 *
 * It executes, strip by strip and block by block so that the data stays in
 * cache, the integer forms that the stage modules define and document; each
 * section names the module whose facts it follows:
 *
 *   color.py     fixed-point RGB <-> YCbCr           (constants passed in),
 *                and the decoder's 255 - x of CMYK and YCCK (DECODER_STEPS)
 *   sampling.py  biased downsampling, fancy upsampling
 *   dct.py       ISLOW passes as integer matrices + DESCALE (matrices passed in)
 *   quantize.py  libjpeg-turbo's reciprocal division
 *
 * native.py builds the constants from those modules and decides when this
 * path applies (CPU, libjpeg's color matrices, sampling ratios of 1 or 2);
 * tests/backends/test_exact.py checks it against the tensor stages bit for bit.
 * It calls encode and decode with keyword arguments; Constants, GEO_* and
 * ITEM_* below are the layouts of the arrays it passes. Every size, kind,
 * geometry row and strip is checked before the strips run (run_call), and
 * decoded values are kept to 16 bits as libjpeg-turbo's SIMD inverse keeps
 * them (dct.py): nothing here can overflow or read outside its buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(_MSC_VER)
#define restrict __restrict
#endif

/* HOT: AVX2 gives the hot loops 8 int32 lanes and a 32-bit multiply, which
 * SSE2 lacks; the integer results are the same either way. */
#include "_loops.h"
/* The inverse DCT and the color conversion also have AVX2 forms written
 * with intrinsics (16-bit multiply-adds, which the vector extensions cannot
 * express), taken at run time where the CPU has AVX2 (cpu_has_avx2). */
#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)) && !defined(DIFFJPEG_NO_AVX2)
#include <immintrin.h>
#define HAVE_AVX2 1
#define AVX2 __attribute__((target("avx2"))) static inline
#endif

/* ------------------------------------------------------------ what native.py passes */
/* Sample and coefficient dtypes (native._KINDS). */
enum { KIND_U8 = 0, KIND_F32 = 1, KIND_F64 = 2 };

/* native._constants(): int32, in this order; encode gets the forward forms,
 * decode the inverse ones. */
typedef struct {
    int32_t color_fix[9];  /* color.fixed_matrix, FIX()ed, row by row */
    int32_t color_add[3];  /* its rounding offsets */
    int32_t islow[64];     /* dct.islow_matrix, row by row */
    int32_t islow_t[64];   /* its transpose: the passes read rows of 8 lanes */
    int32_t simd[16];      /* dct.simd_factors: the SIMD inverse's pmaddwd pairs */
} Constants;
_Static_assert(sizeof(Constants) == 156 * sizeof(int32_t), "Constants is native._constants() as is");

/* exact.layout(): one int32 geometry row per component, geometry.ComponentGeometry's
 * sizes. Encode and decode read the same rows; check_geometry says what they
 * may hold. */
enum {
    GEO_SCALE_H, GEO_SCALE_V,    /* upsampling ratio to full resolution: 1 or 2 */
    GEO_DOWN_H, GEO_DOWN_W,      /* downsampled plane */
    GEO_BLOCKS_H, GEO_BLOCKS_W,  /* its 8x8 blocks */
    GEO_PADDED_H, GEO_PADDED_W,  /* full resolution, replicated out to (encoder) */
    GEO_COLUMNS
};

/* exact.layout(): int32 rows, one strip each. */
enum { ITEM_IMAGE, ITEM_FIRST_MCU_ROW, ITEM_END_MCU_ROW, ITEM_COLUMNS };

/* Rows of 8 int32 lanes (GCC and Clang vector extensions; the build needs
 * one of them). A scalar times a row broadcasts. */
typedef int32_t row8 __attribute__((vector_size(32)));
typedef int32_t row8_unaligned __attribute__((vector_size(32), aligned(4)));
typedef uint8_t bytes8 __attribute__((vector_size(8)));
typedef uint8_t bytes16 __attribute__((vector_size(16)));
typedef uint8_t bytes32 __attribute__((vector_size(32)));
typedef int16_t half16 __attribute__((vector_size(32)));
typedef int16_t half16_unaligned __attribute__((vector_size(32), aligned(2)));
#define LOAD16(p) (*(const half16_unaligned *)(p))
/* lane shuffles (transposes, interleaving): GCC 12+ and Clang; a scalar
 * form otherwise */
#if defined(__has_builtin) && !defined(DIFFJPEG_NO_SHUFFLE)
#if __has_builtin(__builtin_shufflevector)
#define HAVE_SHUFFLE 1
#endif
#endif
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

/* fix: FIX()ed matrix on (Y, Cb, Cr); add: ONE_HALF - fix @ (0, 128, 128).
 * libjpeg's own matrix has Y's column 1.0 (FIX: 65536), R without Cb and B
 * without Cr: then (65536 Y + rest) >> 16 = Y + (rest >> 16) (a multiple of
 * 2**16 passes through the floor), and four products per pixel do. */
HOT static void ycbcr_to_rgb(const uint8_t *restrict y, const uint8_t *restrict cb, const uint8_t *restrict cr,
                         size_t count, const int32_t *fix, const int32_t *add, uint8_t *restrict rgb)
{
    uint8_t *r = rgb, *g = rgb + count, *b = rgb + 2 * count;
    if (fix[0] == 65536 && fix[3] == 65536 && fix[6] == 65536 && fix[1] == 0 && fix[8] == 0) {
        const int32_t rv = fix[2], gu = fix[4], gv = fix[5], bu = fix[7];
        for (size_t i = 0; i < count; i++) {
            int32_t Y = y[i], Cb = cb[i], Cr = cr[i];
            r[i] = (uint8_t)clampi(Y + ((rv * Cr + add[0]) >> 16), 0, 255);
            g[i] = (uint8_t)clampi(Y + ((gu * Cb + gv * Cr + add[1]) >> 16), 0, 255);
            b[i] = (uint8_t)clampi(Y + ((bu * Cb + add[2]) >> 16), 0, 255);
        }
        return;
    }
    for (size_t i = 0; i < count; i++) {
        int32_t Y = y[i], Cb = cb[i], Cr = cr[i];
        r[i] = (uint8_t)clampi((fix[0] * Y + fix[1] * Cb + fix[2] * Cr + add[0]) >> 16, 0, 255);
        g[i] = (uint8_t)clampi((fix[3] * Y + fix[4] * Cb + fix[5] * Cr + add[1]) >> 16, 0, 255);
        b[i] = (uint8_t)clampi((fix[6] * Y + fix[7] * Cb + fix[8] * Cr + add[2]) >> 16, 0, 255);
    }
}

/* ycbcr_to_rgb with AVX2, 16 pixels a step, for matrices whose Y column is
 * 1.0 (libjpeg's): with u = Cb - 128, v = Cr - 128 and add = 2**15 - 128
 * (fu + fv), each output is Y + (fu u + fv v + 2**15) >> 16. Splitting each
 * FIX value as f = 65536 k + r with r in int16 gives k_u u + k_v v +
 * (r_u u + r_v v + 2**15) >> 16 exactly (the multiples of 2**16 pass through
 * the floor): one vpmaddwd on (u, v) pairs per output, then 16-bit lanes,
 * and packuswb's saturation is the clamp to [0, 255]. ycc_constants checks
 * the form and fills k (small: |k| <= 2, so k u fits int16) and r. */
typedef struct { int ok; int16_t k[3][2]; int32_t r[3]; } YccConstants;

static void ycc_constants(const int32_t *fix, const int32_t *add, YccConstants *out)
{
    out->ok = 1;
    for (int c = 0; c < 3; c++) {
        int64_t fu = fix[3 * c + 1], fv = fix[3 * c + 2];
        int64_t ku = (fu + 32768) >> 16, kv = (fv + 32768) >> 16, ru = fu - 65536 * ku, rv = fv - 65536 * kv;
        if (fix[3 * c] != 65536 || (int64_t)add[c] != 32768 - 128 * (fu + fv) || ku < -2 || ku > 2 || kv < -2 || kv > 2) {
            out->ok = 0;
            return;
        }
        out->k[c][0] = (int16_t)ku, out->k[c][1] = (int16_t)kv;
        out->r[c] = (int32_t)(((uint32_t)(uint16_t)rv << 16) | (uint16_t)ru);  /* the (u, v) pair's lane */
    }
}

#ifdef HAVE_AVX2
/* one output of 16 pixels: k_u u + k_v v + (pairs . r + 2**15) >> 16 */
AVX2 __m256i ycc_offset(__m256i u, __m256i v, __m256i lo, __m256i hi, const YccConstants *k, int c)
{
    __m256i r = _mm256_set1_epi32(k->r[c]), half = _mm256_set1_epi32(32768);
    __m256i a = _mm256_srai_epi32(_mm256_add_epi32(_mm256_madd_epi16(lo, r), half), 16);
    __m256i b = _mm256_srai_epi32(_mm256_add_epi32(_mm256_madd_epi16(hi, r), half), 16);
    __m256i rounded = _mm256_packs_epi32(a, b);  /* |values| < 2**9: no saturation; lane order as lo, hi came */
    return _mm256_add_epi16(rounded, _mm256_add_epi16(_mm256_mullo_epi16(u, _mm256_set1_epi16(k->k[c][0])),
                                                       _mm256_mullo_epi16(v, _mm256_set1_epi16(k->k[c][1]))));
}

/* ycbcr_to_rgb's result; the last count % 16 pixels as it computes them */
__attribute__((target("avx2"))) static void ycbcr_to_rgb_avx2(const uint8_t *restrict y, const uint8_t *restrict cb, const uint8_t *restrict cr,
                                                               size_t count, const YccConstants *k, const int32_t *fix, const int32_t *add,
                                                               uint8_t *restrict rgb)
{
    const __m256i bias = _mm256_set1_epi16(128);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i Y = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(y + i)));
        __m256i u = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(cb + i))), bias);
        __m256i v = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(cr + i))), bias);
        __m256i lo = _mm256_unpacklo_epi16(u, v), hi = _mm256_unpackhi_epi16(u, v);  /* pixels 0-3, 8-11 and 4-7, 12-15 */
        for (int c = 0; c < 3; c++) {
            __m256i value = _mm256_add_epi16(Y, ycc_offset(u, v, lo, hi, k, c));
            __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(value, value), 0x08);  /* saturates to [0, 255] */
            _mm_storeu_si128((__m128i *)(rgb + (size_t)c * count + i), _mm256_castsi256_si128(bytes));
        }
    }
    for (; i < count; i++)
        for (int c = 0; c < 3; c++)
            rgb[(size_t)c * count + i] = (uint8_t)clampi((fix[3 * c] * y[i] + fix[3 * c + 1] * cb[i] + fix[3 * c + 2] * cr[i] + add[c]) >> 16, 0, 255);
}
#endif

/* color.DECODER_STEPS: Pillow's 255 - x of the channels it inverts. */
HOT static void invert_samples(uint8_t *restrict p, size_t count)
{
    for (size_t i = 0; i < count; i++) p[i] = (uint8_t)(255 - p[i]);
}

/* ------------------------------------------------------------ 8-bit samples */
/* codec.encode: round(clamp(x * 255, 0, 255)), half to even, in x's dtype
 * (rint rounds half to even in the default rounding mode, which Python keeps).
 * It also says whether every value lies in [lo, hi] (check.py's range; NaN
 * lies nowhere), from the same read: the codec's range check costs no pass
 * of its own. The clamp's comparisons send a NaN to 0 (C leaves converting
 * a NaN to an integer undefined); the caller refuses such an image anyway. */
#define SAMPLES_LOOP(T, RINT)                                                          \
    {                                                                                  \
        const T *restrict x = (const T *)image + offset;                               \
        const T low = (T)lo, high = (T)hi;                                             \
        for (size_t i = 0; i < count; i++) {                                           \
            T u = x[i], v = RINT(u * (T)255);                                          \
            inside &= (u >= low) & (u <= high);                                        \
            out[i] = (uint8_t)(int32_t)(v >= (T)0 ? (v <= (T)255 ? v : (T)255) : (T)0); \
        }                                                                              \
    }
HOT static int samples_from_image(const void *image, int kind, size_t offset, size_t count, uint8_t *restrict out, double lo, double hi)
{
    int inside = 1;
    if (kind == KIND_U8)
        memcpy(out, (const uint8_t *)image + offset, count);
    else if (kind == KIND_F32)
        SAMPLES_LOOP(float, rintf)
    else
        SAMPLES_LOOP(double, rint)
    return inside;
}

/* An interleaved (channels-last) image's `count` pixels from `offset`, each
 * channel into its own plane of `out` (planes `count` apart), in one pass
 * over the image: samples_from_image's values, without a deinterleaving copy. */
#define INTERLEAVED_LOOP(T, RINT)                                                          \
    {                                                                                      \
        const T *restrict x = (const T *)image + offset;                                   \
        const T low = (T)lo, high = (T)hi;                                                 \
        for (size_t i = 0; i < count; i++)                                                 \
            for (int c = 0; c < channels; c++) {                                           \
                T u = x[i * channels + c], v = RINT(u * (T)255);                           \
                inside &= (u >= low) & (u <= high);                                        \
                out[c * count + i] = (uint8_t)(int32_t)(v >= (T)0 ? (v <= (T)255 ? v : (T)255) : (T)0); \
            }                                                                              \
    }
HOT static int samples_from_interleaved(const void *image, int kind, size_t offset, int channels, size_t count,
                                        uint8_t *restrict out, double lo, double hi)
{
    int inside = 1;
    if (kind == KIND_U8 && channels == 3) {
        const uint8_t *restrict x = (const uint8_t *)image + offset;
        for (size_t i = 0; i < count; i++)
            out[i] = x[3 * i], out[count + i] = x[3 * i + 1], out[2 * count + i] = x[3 * i + 2];
    } else if (kind == KIND_U8) {
        const uint8_t *restrict x = (const uint8_t *)image + offset;
        for (size_t i = 0; i < count; i++)
            for (int c = 0; c < channels; c++) out[c * count + i] = x[i * channels + c];
    } else if (kind == KIND_F32)
        INTERLEAVED_LOOP(float, rintf)
    else
        INTERLEAVED_LOOP(double, rint)
    return inside;
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
    int sh = geo[GEO_SCALE_H], sv = geo[GEO_SCALE_V], down_h = geo[GEO_PADDED_H] / sv, cols = geo[GEO_BLOCKS_W] * 8;
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

/* One row of fancy horizontal doubling (sampling.py's h2 filters) from the
 * int16 row s[0, dw), dw >= 2: o[2j] = (3 s[j] + s[j-1] + a) >> shift,
 * o[2j+1] = (3 s[j] + s[j+1] + b) >> shift, the edge values repeated, w
 * outputs (2 dw - 1 or 2 dw). Sums stay below 4 * 1020 + 8: int16 lanes. */
HOT static void double_row(const int16_t *restrict s, int dw, int a, int b, int shift, uint8_t *restrict o, int w)
{
    int j = 1;
#ifdef HAVE_SHUFFLE
    for (; j + 16 <= dw - 1; j += 16) {  /* s[j - 1 .. j + 16]: inside the row */
        half16 c = LOAD16(s + j), l = LOAD16(s + j - 1), r = LOAD16(s + j + 1), n = c * 3;
        half16 even = (n + l + (int16_t)a) >> shift, odd = (n + r + (int16_t)b) >> shift;
        bytes16 lo = __builtin_convertvector(__builtin_shufflevector(even, odd, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), bytes16);
        bytes16 hi = __builtin_convertvector(__builtin_shufflevector(even, odd, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), bytes16);
        memcpy(o + 2 * j, &lo, 16);
        memcpy(o + 2 * j + 16, &hi, 16);
    }
#endif
    o[0] = (uint8_t)((4 * s[0] + a) >> shift);
    o[1] = (uint8_t)((3 * s[0] + s[1] + b) >> shift);
    for (; j < dw - 1; j++) {
        int n = 3 * s[j];
        o[2 * j] = (uint8_t)((n + s[j - 1] + a) >> shift);
        o[2 * j + 1] = (uint8_t)((n + s[j + 1] + b) >> shift);
    }
    o[2 * (dw - 1)] = (uint8_t)((3 * s[dw - 1] + s[dw - 2] + a) >> shift);
    if (2 * dw <= w) o[2 * dw - 1] = (uint8_t)((4 * s[dw - 1] + b) >> shift);
}

/* Output rows [y0, y1) (of w samples) of the upsampled plane, from the
 * downsampled plane (dh x dw) whose rows [g0, g0 + grid_rows) are in `grid`
 * (row stride `stride`); see sampling.py for the filters and biases.
 * `sums` holds dw int16. Returns 0 if this ratio is not handled here. */
HOT static int upsample(const uint8_t *grid, int g0, int grid_rows, int stride, int dh, int dw, int sh, int sv,
                        int y0, int y1, int w, uint8_t *out, int16_t *restrict sums)
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
                sums[j] = (int16_t)(3 * x[j] + f[j]);
            double_row(sums, dw, 8, 7, 4, o, w);  /* h2v2: (3 s[j] + s[j-1] + 8) >> 4, (3 s[j] + s[j+1] + 7) >> 4 */
        } else if (sv == 1 && fancy_h) {
            for (int j = 0; j < dw; j++)
                sums[j] = x[j];
            double_row(sums, dw, 1, 2, 2, o, w);  /* h2v1: (3 x[j] + x[j-1] + 1) >> 2, (3 x[j] + x[j+1] + 2) >> 2 */
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

/* Integers modulo 2**16 into [-32768, 32767] (dct.wrap_int16), in unsigned
 * arithmetic: no signed overflow. */
static inline int32_t wrap16(int64_t x) { return (int32_t)(((uint64_t)x + 32768u) & 65535u) - 32768; }

/* codec.decode: round half to even, then times the table entry (at most
 * 65535: acquire_buffers). Returns 0 if every value is within 8191
 * (v holds them: the matrix passes apply); 1 if not (v holds them modulo
 * 2**16, as the SIMD code's pmullw; *shortcut says whether rows 1-7 of the
 * rounded block are zero); -1 for a coefficient that is not finite or
 * beyond 2**40 (hostile input: left to the tensor path, which clamps there). */
HOT static int dequantize_block(const void *src, int kind, size_t at, const int32_t *restrict table,
                                int32_t *restrict v, int *restrict shortcut)
{
    double r[64];
    int over = 0, big = 0;
    if (kind == KIND_F32) {
        const float *restrict x = (const float *)src + at;
        int inside = 1;  /* every block a file holds: int32 lanes (|q t| <= 32767 * 65535 < 2**31) */
        for (int k = 0; k < 64; k++) inside &= fabsf(x[k]) <= 32767.0f;  /* NaN: false */
        if (inside) {
            int far = 0;
            for (int k = 0; k < 64; k++) {
                v[k] = (int32_t)rintf(x[k]) * table[k];
                far |= (v[k] > 8191) | (v[k] < -8191);
            }
            if (!far) return 0;
        }
        for (int k = 0; k < 64; k++) r[k] = rint((double)x[k]);
    } else {
        const double *restrict x = (const double *)src + at;
        for (int k = 0; k < 64; k++) r[k] = rint(x[k]);
    }
    for (int k = 0; k < 64; k++) {  /* flags, not a max: they vectorize */
        over |= !(fabs(r[k]) <= 1099511627776.0);  /* 2**40; NaN too */
        big |= !(fabs(r[k] * (double)table[k]) <= 8191.0);
    }
    if (over) return -1;
    if (!big) {
        for (int k = 0; k < 64; k++) v[k] = (int32_t)(r[k] * (double)table[k]);
        return 0;
    }
    int nonzero = 0;
    for (int k = 0; k < 64; k++) {  /* residues: their product is the product's residue */
        int64_t q = (int64_t)r[k];
        v[k] = wrap16((int64_t)wrap16(q) * wrap16(table[k]));
        nonzero |= k >= 8 && q != 0;
    }
    *shortcut = !nonzero;
    return 1;
}

/* dct.py's _simd_pass: one DODCT of jidctint-avx2.asm on the 8 int16 values
 * in[0], in[step], ..., with its 16-bit sums wrapping, DESCALE by `bits` and
 * packssdw into out[0], out[ostep], .... f: dct.simd_factors. Below 1.7e9 in
 * int32, as dct.py shows. */
static void simd_pass(const int32_t *in, int step, int32_t *out, int ostep, int bits, const int32_t *f)
{
    int32_t i0 = in[0], i1 = in[step], i2 = in[2 * step], i3 = in[3 * step];
    int32_t i4 = in[4 * step], i5 = in[5 * step], i6 = in[6 * step], i7 = in[7 * step];
    int32_t tmp3 = i2 * f[0] + i6 * f[1], tmp2 = i2 * f[2] + i6 * f[3];
    int32_t tmp0 = wrap16(i0 + i4) * 8192, tmp1 = wrap16(i0 - i4) * 8192;  /* paddw, << CONST_BITS */
    int32_t tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    int32_t z3 = wrap16(i7 + i3), z4 = wrap16(i5 + i1);  /* paddw */
    int32_t z3p = z3 * f[4] + z4 * f[5], z4p = z3 * f[6] + z4 * f[7];
    int32_t o0 = i7 * f[8] + i1 * f[9] + z3p, o1 = i5 * f[10] + i3 * f[11] + z4p;
    int32_t o2 = i5 * f[12] + i3 * f[13] + z3p, o3 = i7 * f[14] + i1 * f[15] + z4p;
    int32_t sums[8] = {tmp10 + o3, tmp11 + o2, tmp12 + o1, tmp13 + o0, tmp13 - o0, tmp12 - o1, tmp11 - o2, tmp10 - o3};
    for (int k = 0; k < 8; k++) out[k * ostep] = clampi((sums[k] + (1 << (bits - 1))) >> bits, -32768, 32767);
}

/* Pass 2 of the SIMD inverse on pass-1 results ws (rows of 8), then
 * packsswb and + 128. */
static void simd_rows(const int32_t *ws, const int32_t *f, uint8_t *restrict out, int out_stride)
{
    for (int i = 0; i < 8; i++) {
        int32_t row[8];
        simd_pass(ws + i * 8, 1, row, 1, 18, f);
        for (int k = 0; k < 8; k++) out[i * out_stride + k] = (uint8_t)(clampi(row[k], -128, 127) + 128);
    }
}

/* Eight rows of 8 lanes transposed: lane k of row i becomes lane i of row k.
 * Three rounds of two-source shuffles (unpack 32, unpack 64, swap halves),
 * or a trip through memory where the compiler has no shuffle builtin. */
INLINE void transpose8(row8 r[8])
{
#ifdef HAVE_SHUFFLE
#define LO32(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define HI32(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define LO64(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define HI64(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define LO128(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define HI128(a, b) __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15)
    row8 a0 = LO32(r[0], r[1]), a1 = HI32(r[0], r[1]), a2 = LO32(r[2], r[3]), a3 = HI32(r[2], r[3]);
    row8 a4 = LO32(r[4], r[5]), a5 = HI32(r[4], r[5]), a6 = LO32(r[6], r[7]), a7 = HI32(r[6], r[7]);
    row8 b0 = LO64(a0, a2), b1 = HI64(a0, a2), b2 = LO64(a1, a3), b3 = HI64(a1, a3);  /* columns k | k + 4 of rows 0-3 */
    row8 b4 = LO64(a4, a6), b5 = HI64(a4, a6), b6 = LO64(a5, a7), b7 = HI64(a5, a7);  /* the same of rows 4-7 */
    r[0] = LO128(b0, b4), r[4] = HI128(b0, b4), r[1] = LO128(b1, b5), r[5] = HI128(b1, b5);
    r[2] = LO128(b2, b6), r[6] = HI128(b2, b6), r[3] = LO128(b3, b7), r[7] = HI128(b3, b7);
#else
    int32_t t[64];
    for (int i = 0; i < 8; i++) STORE8(t + i * 8, r[i]);
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 8; i++) r[k][i] = t[i * 8 + k];
#endif
}

/* One matrix pass of the inverse on 8 lanes: out_i = sum_j M[i][j] x_j +
 * round, for i = 0..7. It uses the symmetries of the inverse matrix (checked
 * by native.py's _constants): M[7-i][j] = M[i][j] for even j and -M[i][j]
 * for odd j, and within the even columns M[3-i][j] = M[i][j] for j = 0, 4
 * and -M[i][j] for j = 2, 6; so 24 products instead of 64. Every partial
 * sum is a part of a row of M times the inputs, no larger than the whole
 * row's bound. */
INLINE void islow_pass(const row8 x[8], const int32_t *restrict M, int32_t round, row8 out[8])
{
    row8 ee0 = M[0] * x[0] + M[4] * x[4] + round, ee1 = M[8] * x[0] + M[12] * x[4] + round;
    row8 eo0 = M[2] * x[2] + M[6] * x[6], eo1 = M[10] * x[2] + M[14] * x[6];
    row8 e[4] = {ee0 + eo0, ee1 + eo1, ee1 - eo1, ee0 - eo0};
    for (int i = 0; i < 4; i++) {
        const int32_t *m = M + i * 8;
        row8 o = m[1] * x[1] + m[3] * x[3] + m[5] * x[5] + m[7] * x[7];
        out[i] = e[i] + o;
        out[7 - i] = e[i] - o;
    }
}

/* Inverse ISLOW (dct.py's idct_islow). With every |v| <= 8191 (wrapping 0),
 * no 16-bit step of the SIMD code can wrap in pass 1: columns as M V, DESCALE
 * 11, saturate to int16 (packssdw); and unless a pass-1 result exceeds 16383,
 * none in pass 2: rows, DESCALE 18, saturate to [-128, 127], + 128. Row sums
 * of |M| are 61214: both stay below 2**31. The rows pass runs on the
 * transposed block and transposes back. Else the SIMD code's butterflies,
 * with pass 1's shortcut (`shortcut`: rows 1-7 of the quantized block zero)
 * where it applies. */
HOT static void idct_islow(const int32_t *restrict v, int wrapping, int shortcut, const Constants *k,
                           uint8_t *restrict out, int out_stride)
{
    int32_t ws[64];
    if (wrapping) {
        for (int j = 0; j < 8; j++) {
            if (shortcut) {
                for (int i = 0; i < 8; i++) ws[i * 8 + j] = wrap16((int64_t)v[j] * 4);  /* psllw */
            } else {
                simd_pass(v + j, 8, ws + j, 8, 11, k->simd);
            }
        }
        simd_rows(ws, k->simd, out, out_stride);
        return;
    }
    row8 x[8], w[8], far = splat(0);
    for (int j = 0; j < 8; j++) x[j] = LOAD8(v + j * 8);  /* rows: lanes are columns */
    islow_pass(x, k->islow, 1 << 10, w);
    for (int i = 0; i < 8; i++) {
        w[i] = clamp8(w[i] >> 11, -32768, 32767);
        far |= (w[i] > splat(16383)) | (w[i] < splat(-16383));
    }
    int any = 0;
    for (int j = 0; j < 8; j++) any |= far[j];
    if (any) {  /* a sum in pass 2 may wrap */
        for (int i = 0; i < 8; i++) STORE8(ws + i * 8, w[i]);
        simd_rows(ws, k->simd, out, out_stride);
        return;
    }
    transpose8(w);  /* lanes are rows */
    islow_pass(w, k->islow, 1 << 17, x);
    for (int j = 0; j < 8; j++) x[j] = clamp8(x[j] >> 18, -128, 127) + 128;
    transpose8(x);
    for (int i = 0; i < 8; i++) {  /* 0..255: each lane's low byte (little-endian) holds it */
#ifdef HAVE_SHUFFLE
        bytes32 lanes = (bytes32)x[i];
        bytes8 b = __builtin_shufflevector(lanes, lanes, 0, 4, 8, 12, 16, 20, 24, 28);
#else
        bytes8 b = __builtin_convertvector(x[i], bytes8);
#endif
        memcpy(out + (size_t)i * out_stride, &b, 8);
    }
}

/* The matrix form of idct_islow with AVX2's 16-bit multiply-adds
 * (vpmaddwd: two int16 products summed into an int32 lane), where the CPU
 * has them; every sum is the generic path's, so the results are too. The
 * inputs of both passes fit int16 (pass 1: |dequantized| <= 8191; pass 2:
 * pass 1 saturated, packssdw, within 16383 or the SIMD butterflies take
 * over as in idct_islow), and so do the matrix entries (at most 11363). `pairs` holds, for the products islow_pass takes, the two
 * entries of M as one lane: (0,4) for rows 0, 1; (2,6) for rows 0, 1; (1,3)
 * and (5,7) for rows 0..3 (matrix_pairs). Each pass takes the lanes as the
 * 8 positions the 1-D transform runs over, two inputs per lane. */
#ifdef HAVE_AVX2

/* lanes: position t holds (a[t], b[t]); a, b: 8 int16 */
AVX2 __m256i pair_lanes(__m128i a, __m128i b)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(a, b)), _mm_unpackhi_epi16(a, b), 1);
}

/* islow_pass on rows x[0..7] of int16 (lanes: positions), shifted by `shift`
 * after adding `round`; out: 8 rows of int32. */
AVX2 void islow_pass_avx2(const __m128i x[8], const int32_t *pairs, int32_t round, int shift, __m256i out[8])
{
    __m256i p04 = pair_lanes(x[0], x[4]), p26 = pair_lanes(x[2], x[6]), p13 = pair_lanes(x[1], x[3]), p57 = pair_lanes(x[5], x[7]);
    __m256i r = _mm256_set1_epi32(round);
    __m256i ee0 = _mm256_add_epi32(_mm256_madd_epi16(p04, _mm256_set1_epi32(pairs[0])), r);
    __m256i ee1 = _mm256_add_epi32(_mm256_madd_epi16(p04, _mm256_set1_epi32(pairs[1])), r);
    __m256i eo0 = _mm256_madd_epi16(p26, _mm256_set1_epi32(pairs[2]));
    __m256i eo1 = _mm256_madd_epi16(p26, _mm256_set1_epi32(pairs[3]));
    __m256i e[4] = {_mm256_add_epi32(ee0, eo0), _mm256_add_epi32(ee1, eo1), _mm256_sub_epi32(ee1, eo1), _mm256_sub_epi32(ee0, eo0)};
    for (int i = 0; i < 4; i++) {
        __m256i o = _mm256_add_epi32(_mm256_madd_epi16(p13, _mm256_set1_epi32(pairs[4 + i])),
                                     _mm256_madd_epi16(p57, _mm256_set1_epi32(pairs[8 + i])));
        out[i] = _mm256_srai_epi32(_mm256_add_epi32(e[i], o), shift);
        out[7 - i] = _mm256_srai_epi32(_mm256_sub_epi32(e[i], o), shift);
    }
}

/* int32 lanes to int16 with saturation (packssdw), in lane order */
AVX2 __m128i saturate16(__m256i x)
{
    return _mm_packs_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
}

/* 8 x 8 int16 transposed: r[i][t] becomes r[t][i] */
AVX2 void transpose16(__m128i r[8])
{
    __m128i a0 = _mm_unpacklo_epi16(r[0], r[1]), a1 = _mm_unpackhi_epi16(r[0], r[1]);
    __m128i a2 = _mm_unpacklo_epi16(r[2], r[3]), a3 = _mm_unpackhi_epi16(r[2], r[3]);
    __m128i a4 = _mm_unpacklo_epi16(r[4], r[5]), a5 = _mm_unpackhi_epi16(r[4], r[5]);
    __m128i a6 = _mm_unpacklo_epi16(r[6], r[7]), a7 = _mm_unpackhi_epi16(r[6], r[7]);
    __m128i b0 = _mm_unpacklo_epi32(a0, a2), b1 = _mm_unpackhi_epi32(a0, a2), b2 = _mm_unpacklo_epi32(a1, a3), b3 = _mm_unpackhi_epi32(a1, a3);
    __m128i b4 = _mm_unpacklo_epi32(a4, a6), b5 = _mm_unpackhi_epi32(a4, a6), b6 = _mm_unpacklo_epi32(a5, a7), b7 = _mm_unpackhi_epi32(a5, a7);
    r[0] = _mm_unpacklo_epi64(b0, b4), r[1] = _mm_unpackhi_epi64(b0, b4), r[2] = _mm_unpacklo_epi64(b1, b5), r[3] = _mm_unpackhi_epi64(b1, b5);
    r[4] = _mm_unpacklo_epi64(b2, b6), r[5] = _mm_unpackhi_epi64(b2, b6), r[6] = _mm_unpacklo_epi64(b3, b7), r[7] = _mm_unpackhi_epi64(b3, b7);
}

/* x: the block's dequantized rows as int16 (lanes: columns), all within 8191 */
AVX2 void idct_rows_avx2(__m128i x[8], const Constants *k, const int32_t *restrict pairs, uint8_t *restrict out, int out_stride)
{
    __m256i y[8];
    islow_pass_avx2(x, pairs, 1 << 10, 11, y);
    __m128i far = _mm_setzero_si128(), high = _mm_set1_epi16(16383), low = _mm_set1_epi16(-16383);
    for (int i = 0; i < 8; i++) {
        x[i] = saturate16(y[i]);
        far = _mm_or_si128(far, _mm_or_si128(_mm_cmpgt_epi16(x[i], high), _mm_cmpgt_epi16(low, x[i])));
    }
    if (!_mm_testz_si128(far, far)) {  /* a sum in pass 2 may wrap: the SIMD butterflies */
        int32_t ws[64];
        for (int i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)(ws + i * 8), _mm256_cvtepi16_epi32(x[i]));
        simd_rows(ws, k->simd, out, out_stride);
        return;
    }
    transpose16(x);  /* lanes: rows */
    islow_pass_avx2(x, pairs, 1 << 17, 18, y);  /* y[k]: output column k, lanes: rows */
    /* |values| < 2**13: int16 without saturation, then int8 with it (packsswb: [-128, 127]), + 128 */
    __m128i sign = _mm_set1_epi8((char)0x80), c[4];
    for (int k = 0; k < 8; k += 2)
        c[k / 2] = _mm_xor_si128(_mm_packs_epi16(saturate16(y[k]), saturate16(y[k + 1])), sign);  /* columns k, k + 1 */
    __m128i d[4];
    for (int q = 0; q < 4; q++) d[q] = _mm_unpacklo_epi8(c[q], _mm_srli_si128(c[q], 8));  /* per row: columns 2q, 2q + 1 */
    __m128i e0 = _mm_unpacklo_epi16(d[0], d[1]), e1 = _mm_unpackhi_epi16(d[0], d[1]);  /* rows 0-3, 4-7: columns 0-3 */
    __m128i e2 = _mm_unpacklo_epi16(d[2], d[3]), e3 = _mm_unpackhi_epi16(d[2], d[3]);  /* the same, columns 4-7 */
    __m128i rows[4] = {_mm_unpacklo_epi32(e0, e2), _mm_unpackhi_epi32(e0, e2), _mm_unpacklo_epi32(e1, e3), _mm_unpackhi_epi32(e1, e3)};
    for (int q = 0; q < 4; q++) {  /* two rows each */
        _mm_storel_epi64((__m128i *)(out + (size_t)(2 * q) * out_stride), rows[q]);
        _mm_storel_epi64((__m128i *)(out + (size_t)(2 * q + 1) * out_stride), _mm_srli_si128(rows[q], 8));
    }
}

/* idct_islow's matrix form (dequantized values v within 8191) */
__attribute__((target("avx2"))) static void idct_islow_avx2(const int32_t *restrict v, const Constants *k, const int32_t *restrict pairs,
                                                             uint8_t *restrict out, int out_stride)
{
    __m128i x[8];
    for (int j = 0; j < 8; j++)  /* rows of the block; lanes: columns */
        x[j] = _mm_packs_epi32(_mm_loadu_si128((const __m128i *)(v + j * 8)), _mm_loadu_si128((const __m128i *)(v + j * 8 + 4)));
    idct_rows_avx2(x, k, pairs, out, out_stride);
}

/* dequantize_block and idct_islow_avx2 in one for a float32 block whose
 * values all lie within +-32767 and whose dequantized values within 8191
 * (every block an 8-bit encoder writes): round half to even (cvtps2dq in
 * the default rounding mode, as rintf), times the table (|t| <= 65535: in
 * int32), int16. Returns 0, having written nothing, for any other block:
 * the caller takes the general path. */
__attribute__((target("avx2"))) static int dequantize_idct_avx2(const float *restrict x, const int32_t *restrict table, const Constants *k,
                                                                 const int32_t *restrict pairs, uint8_t *restrict out, int out_stride)
{
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), limit = _mm256_set1_ps(32767.0f);
    const __m256i high = _mm256_set1_epi32(8191), low = _mm256_set1_epi32(-8191);
    __m256i bad = _mm256_setzero_si256();
    __m128i rows[8];
    for (int j = 0; j < 8; j++) {
        __m256 f = _mm256_loadu_ps(x + j * 8);
        __m256 inside = _mm256_cmp_ps(_mm256_and_ps(f, magnitude), limit, _CMP_LE_OQ);  /* NaN: false */
        __m256i v = _mm256_mullo_epi32(_mm256_cvtps_epi32(f), _mm256_loadu_si256((const __m256i *)(table + j * 8)));
        bad = _mm256_or_si256(bad, _mm256_or_si256(_mm256_andnot_si256(_mm256_castps_si256(inside), _mm256_set1_epi32(-1)),
                                                   _mm256_or_si256(_mm256_cmpgt_epi32(v, high), _mm256_cmpgt_epi32(low, v))));
        rows[j] = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    }
    if (!_mm256_testz_si256(bad, bad)) return 0;
    idct_rows_avx2(rows, k, pairs, out, out_stride);
    return 1;
}
#endif

/* The (M[i][a], M[i][b]) lanes idct_islow_avx2 multiplies by (see there). */
static void matrix_pairs(const int32_t *M, int32_t pairs[12])
{
    static const int which[12][3] = {{0, 0, 4}, {1, 0, 4}, {0, 2, 6}, {1, 2, 6}, {0, 1, 3}, {1, 1, 3}, {2, 1, 3}, {3, 1, 3},
                                     {0, 5, 7}, {1, 5, 7}, {2, 5, 7}, {3, 5, 7}};
    for (int n = 0; n < 12; n++) {
        const int32_t *row = M + which[n][0] * 8;
        pairs[n] = (int32_t)(((uint32_t)(uint16_t)row[which[n][2]] << 16) | (uint16_t)row[which[n][1]]);
    }
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

/* to_unit_range for an interleaved (channels-last) output: pixel i's channel
 * c from plane c, in one pass over the output. */
HOT static void interleave_to_unit_range(const uint8_t *const *planes, int channels, size_t count, void *out, int kind, size_t at)
{
    if (kind == KIND_U8 && channels == 3) {
        uint8_t *restrict o = (uint8_t *)out + at;
        const uint8_t *r = planes[0], *g = planes[1], *b = planes[2];
        for (size_t i = 0; i < count; i++) o[3 * i] = r[i], o[3 * i + 1] = g[i], o[3 * i + 2] = b[i];
    } else if (kind == KIND_U8) {
        uint8_t *restrict o = (uint8_t *)out + at;
        for (size_t i = 0; i < count; i++)
            for (int c = 0; c < channels; c++) o[i * channels + c] = planes[c][i];
    } else if (kind == KIND_F32) {
        float *restrict o = (float *)out + at;
        for (size_t i = 0; i < count; i++)
            for (int c = 0; c < channels; c++) o[i * channels + c] = (float)planes[c][i] / 255.0f;
    } else {
        double *restrict o = (double *)out + at;
        for (size_t i = 0; i < count; i++)
            for (int c = 0; c < channels; c++) o[i * channels + c] = (double)planes[c][i] / 255.0;
    }
}

static inline void store(void *out, int kind, size_t index, double value)
{
    if (kind == KIND_F32) ((float *)out)[index] = (float)value;
    else ((double *)out)[index] = value;
}

/* Set once at import: whether the AVX2 forms run (the CPU has AVX2, and
 * DIFFJPEG_NO_INTRINSICS is not set: the tests compare both). */
static int cpu_has_avx2 = 0;

/* ------------------------------------------------------------ one call */
enum { ENCODE, DECODE };

/* Images may be at most this tall and wide: every row and column index
 * below, rounded out to blocks and doubled, then stays far inside int. */
#define MAX_SIDE (1 << 28)
#define MAX_CHANNELS 4  /* decode: CMYK and YCCK; encode takes 1 or 3 */

typedef struct {
    Py_buffer view;
    int held;
} Buffer;

/* A call's keyword arguments (see native_encode), borrowed. */
typedef struct {
    PyObject *image, *blocks, *dct, *constants, *tables, *geometry, *items, *within;
    int image_kind, blocks_kind, n, h, w;
    Py_ssize_t plane_stride, sample_stride;
    int convert, invert;  /* decode only */
} Arguments;

/* A checked call: what the strip loops read, and the buffers it holds. */
typedef struct {
    int direction;                /* ENCODE or DECODE */
    int n, channels, h, w;        /* the images: (n, channels, h, w) */
    Py_ssize_t plane_stride;      /* samples from one plane's first to the next's: h * w, or more for rows of a taller image;
                                     1 where the channels are interleaved */
    Py_ssize_t sample_stride;     /* samples from one pixel of a plane to the next: 1, or the channels where interleaved */
    Py_ssize_t image_stride;      /* samples from one image's first to the next's */
    int image_kind, blocks_kind;  /* KIND_* */
    Constants k;                  /* copied: a few hundred bytes */
    int32_t pairs[12];            /* decode: M's entries as idct_islow_avx2 takes them */
    YccConstants ycc;             /* decode: the color matrix as ycbcr_to_rgb_avx2 takes it */
    int avx2;                     /* decode: take the AVX2 forms */
    int32_t geo[MAX_CHANNELS][GEO_COLUMNS];  /* copied and checked */
    size_t blocks[MAX_CHANNELS];  /* blocks per image, per component */
    int v_max, mcu_h;             /* largest vertical ratio; MCU row height in image rows */
    int strip_max;                /* the tallest strip among the items, in image rows */
    int cols_max, dw_max;         /* widest grid row, widest downsampled row */
    const int32_t *tables;        /* (n, channels, 64): each component's table */
    int32_t *rounded_tables;      /* decode: its float64 tables rounded, owned */
    int declined;                 /* decode: a table the kernel leaves to the tensor path */
    const int32_t *items;         /* (n_items, ITEM_COLUMNS) */
    Py_ssize_t n_items;
    int with_dct;
    int check;                    /* encode: float samples are checked against [within_lo, within_hi] */
    double within_lo, within_hi;
    int convert;                  /* decode: YCbCr to RGB on the first three channels */
    int invert;                   /* decode: bit c set: channel c becomes 255 - x (after convert) */
    Buffer image, tables_buf, items_buf, block_bufs[MAX_CHANNELS], dct_bufs[MAX_CHANNELS];
} Job;

/* a * b for sizes, or -1 once past PY_SSIZE_T_MAX (so that no product wraps
 * round to a small size that a small buffer would pass) */
static Py_ssize_t mul(Py_ssize_t a, Py_ssize_t b)
{
    return a < 0 || b < 0 || (b && a > PY_SSIZE_T_MAX / b) ? -1 : a * b;
}

static Py_ssize_t kind_size(int kind) { return kind == KIND_U8 ? 1 : kind == KIND_F32 ? 4 : 8; }

enum { READ = 0, WRITE = 1, EXACT = 2 };

/* Holds obj's buffer in b if it is C-contiguous (and writable for WRITE) and
 * has at least `need` bytes (exactly, for EXACT: a layout that native.py
 * and this file must agree on). */
static int get_buffer(PyObject *obj, Buffer *b, int flags, const char *name, Py_ssize_t need)
{
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | (flags & WRITE ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    b->held = 1;
    if (need < 0) {
        PyErr_Format(PyExc_ValueError, "%s: size overflows", name);
        return -1;
    }
    if (b->view.len < need || (flags & EXACT && b->view.len != need)) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, needs %zd", name, b->view.len, need);
        return -1;
    }
    return 0;
}

static void release(Buffer *b)
{
    if (b->held) PyBuffer_Release(&b->view);
    b->held = 0;
}

static void release_job(Job *job)
{
    release(&job->image);
    release(&job->tables_buf);
    free(job->rounded_tables);
    job->rounded_tables = NULL;
    release(&job->items_buf);
    for (int c = 0; c < MAX_CHANNELS; c++) {
        release(&job->block_bufs[c]);
        release(&job->dct_bufs[c]);
    }
}

/* Parses the keyword arguments (all of them, keywords only) into `a` and
 * checks the scalars and tuples; fills job's sizes and kinds. */
static int parse_arguments(PyObject *args, PyObject *kwargs, int direction, Arguments *a, Job *job)
{
    static char *encode_keywords[] = {"image", "image_kind", "blocks", "blocks_kind", "dct", "count", "height", "width",
                                      "constants", "tables", "geometry", "items", "plane_stride", "sample_stride", "within", NULL};
    static char *decode_keywords[] = {"image", "image_kind", "blocks", "blocks_kind", "count", "height", "width",
                                      "constants", "tables", "geometry", "items", "convert", "invert", "plane_stride",
                                      "sample_stride", NULL};
    const char *name = direction == ENCODE ? "encode" : "decode";
    char **keywords = direction == ENCODE ? encode_keywords : decode_keywords;
    Py_ssize_t expected = 0;
    while (keywords[expected]) expected++;
    memset(a, 0, sizeof *a);
    a->dct = Py_None, a->within = Py_None;
    int parsed = direction == ENCODE
        ? PyArg_ParseTupleAndKeywords(args, kwargs, "|$OiOiOiiiOOOOnnO:encode", keywords, &a->image, &a->image_kind,
                                      &a->blocks, &a->blocks_kind, &a->dct, &a->n, &a->h, &a->w, &a->constants,
                                      &a->tables, &a->geometry, &a->items, &a->plane_stride, &a->sample_stride, &a->within)
        : PyArg_ParseTupleAndKeywords(args, kwargs, "|$OiOiiiiOOOOiinn:decode", keywords, &a->image, &a->image_kind,
                                      &a->blocks, &a->blocks_kind, &a->n, &a->h, &a->w, &a->constants, &a->tables,
                                      &a->geometry, &a->items, &a->convert, &a->invert, &a->plane_stride, &a->sample_stride);
    if (!parsed) return -1;
    if (!kwargs || PyDict_GET_SIZE(kwargs) != expected) {  /* the parser takes none as optional */
        PyErr_Format(PyExc_TypeError, "%s: every argument is required", name);
        return -1;
    }
    int channels = PyTuple_Check(a->blocks) ? (int)PyTuple_GET_SIZE(a->blocks) : 0;
    int with_dct = a->dct != Py_None;
    if (direction == ENCODE)  /* encode converts RGB, decode as told */
        a->convert = channels == 3, a->invert = 0;
    int allowed = channels == 1 || channels == 3 || (direction == DECODE && channels == MAX_CHANNELS);
    if (!allowed || (with_dct && (!PyTuple_Check(a->dct) || PyTuple_GET_SIZE(a->dct) != channels)) ||
        a->convert < 0 || a->convert > 1 || (a->convert && channels < 3) || a->invert < 0 || a->invert >= (1 << channels) ||
        a->n < 0 || a->h < 1 || a->w < 1 || a->h > MAX_SIDE || a->w > MAX_SIDE || a->image_kind < KIND_U8 ||
        a->image_kind > KIND_F64 || (a->blocks_kind != KIND_F32 && a->blocks_kind != KIND_F64) ||
        /* planes (rows of samples side by side), or the channels interleaved: nothing overlaps */
        !(a->sample_stride == 1 ? a->plane_stride >= (Py_ssize_t)a->h * a->w
                                : channels > 1 && a->sample_stride == channels && a->plane_stride == 1)) {
        PyErr_Format(PyExc_ValueError, "%s: bad arguments", name);
        return -1;
    }
    job->direction = direction, job->channels = channels, job->with_dct = with_dct;
    job->convert = a->convert, job->invert = a->invert;
    job->n = a->n, job->h = a->h, job->w = a->w, job->image_kind = a->image_kind, job->blocks_kind = a->blocks_kind;
    job->plane_stride = a->plane_stride, job->sample_stride = a->sample_stride;
    job->check = a->within != Py_None, job->within_lo = -INFINITY, job->within_hi = INFINITY;
    if (job->check) {
        if (!PyTuple_Check(a->within)) {
            PyErr_Format(PyExc_TypeError, "%s: within must be None or a (lo, hi) tuple", name);
            return -1;
        }
        if (!PyArg_ParseTuple(a->within, "dd", &job->within_lo, &job->within_hi)) return -1;
        if (!(job->within_lo <= job->within_hi)) {
            PyErr_Format(PyExc_ValueError, "%s: bad arguments", name);
            return -1;
        }
    }
    return 0;
}

/* Whether a geometry row is ComponentGeometry's for an h x w image with
 * ratios of 1 or 2. The strips rely on: downsampled rows and columns times
 * the ratio cover the image (decode's reads stay in the plane), the block
 * grid holds the downsampled plane, and no size exceeds the image's. */
static int check_geometry(const int32_t *g, int h, int w)
{
    int sh = g[GEO_SCALE_H], sv = g[GEO_SCALE_V];
    return sh >= 1 && sh <= 2 && sv >= 1 && sv <= 2 &&
           g[GEO_DOWN_H] >= 1 && g[GEO_DOWN_H] <= h && (int64_t)g[GEO_DOWN_H] * sv >= h &&
           g[GEO_DOWN_W] >= 1 && g[GEO_DOWN_W] <= w && (int64_t)g[GEO_DOWN_W] * sh >= w &&
           g[GEO_BLOCKS_H] == (g[GEO_DOWN_H] + 7) / 8 && g[GEO_BLOCKS_W] == (g[GEO_DOWN_W] + 7) / 8 &&
           g[GEO_PADDED_H] >= h && g[GEO_PADDED_H] <= h + 8 && g[GEO_PADDED_H] % sv == 0 &&
           g[GEO_PADDED_W] == g[GEO_BLOCKS_W] * 8 * sh;
}

/* items: rows (image, first MCU row, end MCU row) in range; sets the
 * tallest strip, in full-resolution rows. */
static int check_items(Job *job)
{
    const int32_t *items = job->items;
    int h = job->h, mcu_h = job->mcu_h, mcu_rows = (h + mcu_h - 1) / mcu_h, most = 0;
    for (Py_ssize_t t = 0; t < job->n_items; t++) {
        const int32_t *it = items + ITEM_COLUMNS * t;
        int m0 = it[ITEM_FIRST_MCU_ROW], m1 = it[ITEM_END_MCU_ROW];
        if (it[ITEM_IMAGE] < 0 || it[ITEM_IMAGE] >= job->n || m0 < 0 || m0 >= m1 || m1 > mcu_rows) {
            PyErr_SetString(PyExc_ValueError, "items: (image, first MCU row, end MCU row) out of range");
            return -1;
        }
        int rows = mini(m1 * mcu_h, h) - m0 * mcu_h;
        if (rows > most) most = rows;
    }
    job->strip_max = most;
    return 0;
}

/* Holds every buffer at the size the arguments imply, copies the constants
 * and the geometry, checks geometry, tables (encode) and items. */
static int acquire_buffers(const Arguments *a, Job *job)
{
    const char *name = job->direction == ENCODE ? "encode" : "decode";
    int channels = job->channels, blocks_out = job->direction == ENCODE ? WRITE : READ;
    /* the image's planes, plane_stride apart: the last one ends h * w samples after its start;
       interleaved, the images are h * w * channels samples each */
    Py_ssize_t planes = mul(job->n, channels), plane = mul(job->h, job->w), span = mul(planes - 1, job->plane_stride);
    Py_ssize_t samples = planes == 0 ? 0 : span < 0 || plane < 0 || span > PY_SSIZE_T_MAX - plane ? -1 : span + plane;
    job->image_stride = mul(channels, job->plane_stride);
    if (job->sample_stride > 1)
        job->image_stride = mul(plane, channels), samples = mul(job->n, job->image_stride);
    Buffer constants = {0}, geometry = {0};
    int failed = get_buffer(a->image, &job->image, job->direction == DECODE ? WRITE : READ, "image",
                            mul(samples, kind_size(job->image_kind))) < 0 ||
                 get_buffer(a->constants, &constants, EXACT, "constants", sizeof(Constants)) < 0 ||
                 get_buffer(a->geometry, &geometry, EXACT, "geometry", channels * GEO_COLUMNS * sizeof(int32_t)) < 0 ||
                 get_buffer(a->tables, &job->tables_buf, READ, "tables",
                            mul(mul(job->n, channels), 64 * (job->direction == DECODE ? sizeof(double) : sizeof(int32_t)))) < 0 ||
                 get_buffer(a->items, &job->items_buf, READ, "items", 0) < 0;
    if (!failed) {
        memcpy(&job->k, constants.view.buf, sizeof(Constants));
        matrix_pairs(job->k.islow, job->pairs);
        ycc_constants(job->k.color_fix, job->k.color_add, &job->ycc);
        job->avx2 = cpu_has_avx2;
        memcpy(job->geo, geometry.view.buf, channels * GEO_COLUMNS * sizeof(int32_t));
    }
    release(&constants);
    release(&geometry);
    if (failed) return -1;
    job->v_max = 1, job->cols_max = 8, job->dw_max = 1;
    for (int c = 0; c < channels; c++) {
        const int32_t *g = job->geo[c];
        if (!check_geometry(g, job->h, job->w)) {
            PyErr_Format(PyExc_ValueError, "%s: bad geometry", name);
            return -1;
        }
        job->blocks[c] = (size_t)g[GEO_BLOCKS_H] * g[GEO_BLOCKS_W];
        job->v_max = g[GEO_SCALE_V] > job->v_max ? g[GEO_SCALE_V] : job->v_max;
        job->cols_max = g[GEO_BLOCKS_W] * 8 > job->cols_max ? g[GEO_BLOCKS_W] * 8 : job->cols_max;
        job->dw_max = g[GEO_DOWN_W] > job->dw_max ? g[GEO_DOWN_W] : job->dw_max;
        Py_ssize_t bytes = mul(mul(job->n, (Py_ssize_t)job->blocks[c]), 64 * kind_size(job->blocks_kind));
        if (get_buffer(PyTuple_GET_ITEM(a->blocks, c), &job->block_bufs[c], blocks_out, "blocks", bytes) < 0 ||
            (job->with_dct && get_buffer(PyTuple_GET_ITEM(a->dct, c), &job->dct_bufs[c], WRITE, "dct", bytes) < 0))
            return -1;
    }
    job->tables = (const int32_t *)job->tables_buf.view.buf;
    Py_ssize_t entries = mul(job->n, channels) * 64;  /* the tables buffer holds them: no overflow */
    if (job->direction == DECODE) {  /* codec.decode rounds tables half to even; dequantize_block's bound */
        const double *given = (const double *)job->tables_buf.view.buf;
        job->rounded_tables = malloc((entries > 0 ? (size_t)entries : 1) * sizeof(int32_t));
        if (!job->rounded_tables) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t k = 0; k < entries; k++) {
            double r = rint(given[k]);
            if (!(fabs(r) <= 65535.0)) job->declined = 1;  /* NaN too */
            job->rounded_tables[k] = job->declined ? 0 : (int32_t)r;
        }
        job->tables = job->rounded_tables;
    }
    if (job->direction == ENCODE)  /* compute_reciprocal and quantize_block's bounds */
        for (Py_ssize_t k = 0; k < entries; k++)
            if (job->tables[k] < 1 || job->tables[k] > 255) {
                PyErr_SetString(PyExc_ValueError, "encode: quantization table entries must be in 1..255");
                return -1;
            }
    job->mcu_h = job->v_max * 8;
    job->items = (const int32_t *)job->items_buf.view.buf;
    job->n_items = job->items_buf.view.len / (ITEM_COLUMNS * (Py_ssize_t)sizeof(int32_t));
    return check_items(job);
}

/* ------------------------------------------------------------ strips */
/* One strip's work space, reused strip after strip. */
typedef struct {
    int16_t *colsum;  /* decode's horizontal upsampling row; first: malloc's alignment */
    uint8_t *grid;    /* the strip's rows of one component's block grid */
    uint8_t *planes;  /* the strip's full-resolution rows of each component */
    uint8_t *rgb;     /* the same rows as R, G, B */
} Scratch;

/* The work space's size; with `base`, carves it into *s. The grid holds a
 * strip's downsampled rows, one more each side (decode's fancy upsampling)
 * and under 16 more where block rows run past the image. */
static size_t scratch_layout(const Job *job, uint8_t *base, Scratch *s)
{
    size_t colsum = (size_t)job->dw_max * sizeof(int32_t), grid = ((size_t)job->strip_max + 2 + 16) * job->cols_max;
    size_t planes = (size_t)job->channels * job->strip_max * job->w;
    if (base) {
        s->colsum = (int16_t *)base;
        s->grid = base + colsum;
        s->planes = s->grid + grid;
        s->rgb = s->planes + planes;
    }
    return colsum + grid + 2 * planes + 1;
}

/* ------------------------------------------------------------ encode */
/* Component c's block rows [b0, b1) of image i, whose samples are in `grid`:
 * forward DCT, quantization, and the stores. */
static void encode_blocks(const Job *job, int c, int i, int b0, int b1, const uint8_t *grid)
{
    const int32_t *table = job->tables + ((size_t)i * job->channels + c) * 64;
    uint32_t rq[64], rc[64], rr[64];
    for (int k = 0; k < 64; k++) {
        Reciprocal rec = compute_reciprocal(8 * (int64_t)table[k]);
        rq[k] = (uint32_t)rec.q, rc[k] = (uint32_t)rec.c, rr[k] = (uint32_t)rec.r;
    }
    int bw = job->geo[c][GEO_BLOCKS_W], cols = bw * 8, out_kind = job->blocks_kind;
    void *out = job->block_bufs[c].view.buf, *dct = job->with_dct ? job->dct_bufs[c].view.buf : NULL;
    size_t base = (size_t)i * job->blocks[c] * 64;
    for (int by = b0; by < b1; by++)
        for (int bx = 0; bx < bw; bx++) {
            int32_t sm[64], f[64];
            float qv[64];
            const uint8_t *src = grid + (size_t)(by - b0) * 8 * cols + bx * 8;
            for (int r = 0; r < 8; r++)
                for (int k = 0; k < 8; k++) sm[r * 8 + k] = (int32_t)src[r * cols + k] - 128;
            fdct_islow(sm, job->k.islow, job->k.islow_t, f);
            quantize_block(f, rq, rc, rr, qv);
            size_t at = base + ((size_t)by * bw + bx) * 64;
            if (dct)
                for (int k = 0; k < 64; k++) store(dct, out_kind, at + k, f[k] * 0.125);
            if (out_kind == KIND_F32) {
                memcpy((float *)out + at, qv, sizeof qv);
            } else {
                double *o = (double *)out + at;
                for (int k = 0; k < 64; k++) o[k] = (double)qv[k];
            }
        }
}

/* Image i's MCU rows [m0, m1). They read only the image rows [y0, y1) =
 * [m0 * mcu_h, min(m1 * mcu_h, h)): a component's block rows there are
 * [m0 v, m1 v) with v = v_max / its scale v, its grid rows times its scale v
 * start at y0, and rows past y1 only occur in the last strip, where they are
 * clamped to h - 1 < y1. */
static int encode_strip(const Job *job, int i, int m0, int m1, const Scratch *s)
{
    int channels = job->channels, h = job->h, w = job->w, y0 = m0 * job->mcu_h;
    int rows = mini(m1 * job->mcu_h, h) - y0;
    size_t count = (size_t)rows * w, step = (size_t)job->sample_stride;
    size_t first = (size_t)i * (size_t)job->image_stride + (size_t)y0 * w * step;
    uint8_t *planes = s->planes, *rgb = s->rgb;
    int inside = 1;
    if (step > 1)  /* interleaved: every channel in one pass */
        inside = samples_from_interleaved(job->image.view.buf, job->image_kind, first, channels, count,
                                          channels == 3 ? rgb : planes, job->within_lo, job->within_hi);
    else
        for (int ch = 0; ch < channels; ch++)
            inside &= samples_from_image(job->image.view.buf, job->image_kind, first + (size_t)ch * (size_t)job->plane_stride,
                                         count, (channels == 3 ? rgb : planes) + ch * count, job->within_lo, job->within_hi);
    if (job->check && !inside) return 0;  /* refused by the caller: no use encoding it */
    if (channels == 3)
        rgb_to_ycbcr(rgb, count, job->k.color_fix, job->k.color_add, planes, planes + count, planes + 2 * count);
    for (int c = 0; c < channels; c++) {
        const int32_t *g = job->geo[c];
        int v = job->v_max / g[GEO_SCALE_V], b0 = m0 * v, b1 = mini(m1 * v, g[GEO_BLOCKS_H]);
        if (b0 >= b1) continue;
        downsample_to_grid(planes + c * count, y0, rows, h, w, g, b0 * 8, b1 * 8, s->grid);
        encode_blocks(job, c, i, b0, b1, s->grid);
    }
    return 1;
}

/* ------------------------------------------------------------ decode */
/* Component c's block rows [b0, b1) of image i into `grid`: dequantization
 * and inverse DCT. 0 if a coefficient is left to the tensor path. */
static int decode_blocks(const Job *job, int c, int i, int b0, int b1, uint8_t *grid)
{
    const int32_t *table = job->tables + ((size_t)i * job->channels + c) * 64;
    int bw = job->geo[c][GEO_BLOCKS_W], cols = bw * 8, kind = job->blocks_kind;
    const char *src = (const char *)job->block_bufs[c].view.buf + (size_t)i * job->blocks[c] * 64 * kind_size(kind);
    for (int by = b0; by < b1; by++)
        for (int bx = 0; bx < bw; bx++) {
            int32_t v[64];
            int shortcut = 0;
            uint8_t *out = grid + (size_t)(by - b0) * 8 * cols + bx * 8;
            size_t at = ((size_t)by * bw + bx) * 64;
#ifdef HAVE_AVX2
            if (job->avx2 && kind == KIND_F32 && dequantize_idct_avx2((const float *)src + at, table, &job->k, job->pairs, out, cols))
                continue;
#endif
            int wrapping = dequantize_block(src, kind, at, table, v, &shortcut);
            if (wrapping < 0) return 0;
#ifdef HAVE_AVX2
            if (job->avx2 && !wrapping) {
                idct_islow_avx2(v, &job->k, job->pairs, out, cols);
                continue;
            }
#endif
            idct_islow(v, wrapping, shortcut, &job->k, out, cols);
        }
    return 1;
}

/* Image i's MCU rows [m0, m1), output rows [y0, y1). They need downsampled
 * rows [y0 / v, (y1 - 1) / v] and, for fancy upsampling in v, one more on
 * each side (clamped to the plane): the strip decodes the block rows that
 * hold them, its neighbours' edge rows included. 0 as decode_blocks. */
static int decode_strip(const Job *job, int i, int m0, int m1, const Scratch *s)
{
    int channels = job->channels, h = job->h, w = job->w, y0 = m0 * job->mcu_h, y1 = mini(m1 * job->mcu_h, h);
    size_t count = (size_t)(y1 - y0) * w, step = (size_t)job->sample_stride;
    size_t first = (size_t)i * (size_t)job->image_stride + (size_t)y0 * w * step;
    uint8_t *planes = s->planes;
    for (int c = 0; c < channels; c++) {
        const int32_t *g = job->geo[c];
        int sh = g[GEO_SCALE_H], sv = g[GEO_SCALE_V], dh = g[GEO_DOWN_H], cols = g[GEO_BLOCKS_W] * 8;
        int d0 = y0 / sv, d1 = (y1 - 1) / sv;
        if (sv == 2) d0 = d0 > 0 ? d0 - 1 : 0, d1 = mini(d1 + 1, dh - 1);
        int b0 = d0 / 8, b1 = d1 / 8 + 1;
        if (!decode_blocks(job, c, i, b0, b1, s->grid) ||
            !upsample(s->grid, b0 * 8, (b1 - b0) * 8, cols, dh, g[GEO_DOWN_W], sh, sv, y0, y1, w, planes + c * count, s->colsum))
            return 0;  /* upsample: not reached, check_geometry allows ratios 1 and 2 only */
    }
    if (job->convert) {  /* s->rgb holds as many planes as s->planes */
#ifdef HAVE_AVX2
        if (job->avx2 && job->ycc.ok)
            ycbcr_to_rgb_avx2(planes, planes + count, planes + 2 * count, count, &job->ycc, job->k.color_fix, job->k.color_add, s->rgb);
        else
#endif
        ycbcr_to_rgb(planes, planes + count, planes + 2 * count, count, job->k.color_fix, job->k.color_add, s->rgb);
    }
    const uint8_t *outputs[MAX_CHANNELS];
    for (int ch = 0; ch < channels; ch++) {
        uint8_t *samples = (job->convert && ch < 3 ? s->rgb : planes) + ch * count;
        if (job->invert >> ch & 1) invert_samples(samples, count);
        outputs[ch] = samples;
        if (step == 1)
            to_unit_range(samples, count, job->image.view.buf, job->image_kind, first + (size_t)ch * (size_t)job->plane_stride);
    }
    if (step > 1)  /* interleaved: every channel in one pass */
        interleave_to_unit_range(outputs, channels, count, job->image.view.buf, job->image_kind, first);
    return 1;
}

/* ------------------------------------------------------------ entry points */
/* Every item's strip in turn, without the GIL; 0 as decode_strip. */
static int run_strips(const Job *job, const Scratch *s)
{
    for (Py_ssize_t t = 0; t < job->n_items; t++) {
        const int32_t *it = job->items + ITEM_COLUMNS * t;
        int i = it[ITEM_IMAGE], m0 = it[ITEM_FIRST_MCU_ROW], m1 = it[ITEM_END_MCU_ROW];
        if (!(job->direction == ENCODE ? encode_strip(job, i, m0, m1, s) : decode_strip(job, i, m0, m1, s))) return 0;
    }
    return 1;
}

/* Large outputs are written once, page by page. Where the system has
 * transparent huge pages on request (Linux's "madvise" setting), asking for
 * them on the 2 MiB-aligned part spares most of the page faults; and
 * faulting the pages in here, in one call (MADV_POPULATE_WRITE, Linux 5.14),
 * before the strips are shared among threads, keeps threads from faulting
 * huge pages in at once, which stalls them. Advice only: nothing changes if
 * it is refused. */
#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23
#endif
static void prepare_pages(void *buffer, size_t length)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)1 << 21, page = 4096;
    uintptr_t start = ((uintptr_t)buffer + huge - 1) & ~(huge - 1), end = ((uintptr_t)buffer + length) & ~(huge - 1);
    if (length < 2 * huge || end <= start) return;
    madvise((void *)start, end - start, MADV_HUGEPAGE);
    start = (uintptr_t)buffer & ~(page - 1), end = ((uintptr_t)buffer + length + page - 1) & ~(page - 1);
    madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#else
    (void)buffer, (void)length;
#endif
}

/* Parse, check, acquire; run the strips; release. Returns 1 if every strip
 * ran, 0 if decode left the batch to the tensor path (a table or a
 * coefficient it cannot take), -1 with an exception. */
static int run_call(PyObject *args, PyObject *kwargs, int direction)
{
    Arguments a;
    Job job;
    memset(&job, 0, sizeof job);
    int ok = -1;
    if (parse_arguments(args, kwargs, direction, &a, &job) < 0 || acquire_buffers(&a, &job) < 0) goto done;
    ok = !job.declined;
    if (job.n_items == 0 || job.declined) goto done;
    Scratch s;
    uint8_t *scratch = malloc(scratch_layout(&job, NULL, NULL));
    if (!scratch) {
        PyErr_NoMemory();
        ok = -1;
        goto done;
    }
    scratch_layout(&job, scratch, &s);
    Py_BEGIN_ALLOW_THREADS
    ok = run_strips(&job, &s);
    Py_END_ALLOW_THREADS
    free(scratch);
done:
    release_job(&job);
    return ok;
}

/* encode(*, image, image_kind, blocks, blocks_kind, dct, count, height, width, constants, tables, geometry, items,
 *        plane_stride, sample_stride, within)
 *   image: (count, channels, height, width), uint8 / float32 / float64 (image_kind),
 *     from the buffer's start: with sample_stride 1, its planes plane_stride
 *     samples apart (height * width, or more: the rows of a taller image,
 *     read in place); with sample_stride = channels and plane_stride 1, its
 *     channels interleaved (channels last: a PIL image's layout), read in place
 *   blocks: one writable buffer per component, (count, blocks h, blocks w, 8, 8),
 *     float32 / float64 (blocks_kind): receives the quantized blocks
 *   dct: None, or buffers as `blocks` for the DCT coefficients before
 *     quantization (ISLOW / 8, dct.py's fdct): what the gradient needs
 *   constants: Constants, the forward forms
 *   tables: int32 (count, channels, 64): each component's table, entries in 1..255
 *   geometry: int32 (channels, GEO_COLUMNS)
 *   items: int32 (k, ITEM_COLUMNS): the strips to encode (see check_items)
 *   within: None, or (lo, hi): float samples are checked against [lo, hi]
 * Returns False, having stopped early, if a float sample is outside `within`
 * or NaN (the caller then reports the image's range), else True.
 */
static PyObject *native_encode(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    int ok = run_call(args, kwargs, ENCODE);
    return ok < 0 ? NULL : PyBool_FromLong(ok);
}

/* decode(*, image, image_kind, blocks, blocks_kind, count, height, width, constants, tables, geometry, items,
 *        convert, invert, plane_stride, sample_stride)
 *   image: writable (count, channels, height, width): float32 / float64 (image_kind)
 *     samples / 255, or uint8: the samples; laid out as encode's
 *   blocks: one buffer per component, (count, blocks h, blocks w, 8, 8),
 *     float32 / float64 (blocks_kind): the quantized coefficients
 *   constants: Constants, the inverse forms
 *   tables: float64 (count, channels, 64): each component's table, rounded
 *     half to even here; one beyond +-65535 or not finite makes it return False
 *   geometry, items: as encode's; 1, 3 or 4 channels
 *   convert: 1 for YCbCr to RGB on the first three channels (3 or 4 channels), else 0
 *   invert: bit c set if channel c becomes 255 - x, after convert (color.DECODER_STEPS)
 * Returns False, having written nothing meaningful, if a coefficient is not
 * finite or beyond 2**40, or a table is declined: the caller then decodes
 * with the tensor path, which defines those cases.
 */
static PyObject *native_decode(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    int ok = run_call(args, kwargs, DECODE);
    return ok < 0 ? NULL : PyBool_FromLong(ok);
}

/* prepare(buffer): prepare_pages on a writable buffer that decode is about
 * to fill (native.py calls it once, before sharing the strips). */
static PyObject *native_prepare(PyObject *self, PyObject *buffer)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    prepare_pages(view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))native_encode, METH_VARARGS | METH_KEYWORDS,
     "Exact no-gradient encode of a batch (see diffjpeg/backends/exact.py)."},
    {"decode", (PyCFunction)(void (*)(void))native_decode, METH_VARARGS | METH_KEYWORDS,
     "Exact no-gradient decode of a batch (see diffjpeg/backends/exact.py)."},
    {"prepare", native_prepare, METH_O, "Huge pages, faulted in, for a large output decode is about to write."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_native", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
#ifdef HAVE_AVX2
    __builtin_cpu_init();
    cpu_has_avx2 = __builtin_cpu_supports("avx2") && !getenv("DIFFJPEG_NO_INTRINSICS");
#endif
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "intrinsics", cpu_has_avx2) < 0) {  /* whether the AVX2 forms run */
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

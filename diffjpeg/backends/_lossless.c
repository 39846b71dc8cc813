/* diffjpeg.backends._lossless: one lossless JPEG (SOF3) scan, Huffman decoding and
 * prediction, as libjpeg-turbo 3.x does them (jdlhuff.c, jddiffct.c,
 * jdlossls.c, jdhuff.c's bit reader, jdmarker.c's restart handling).
 *
 * The compiled twin of diffjpeg/codec/lossless.py's _decode_scan, step for step:
 * that module's docstring states the libjpeg facts. Hostile input is safe:
 * the reader never reads outside [start, end) of the scan's bytes (and the
 * marker code at end + 1), and the work is one pass over the image's
 * samples. The GIL is released while decoding; no state outlives a call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_GET_BITS 57 /* jdhuff.h on 64-bit builds: fill the buffer to this */
#define MAX_COMPS 4
#define LOOKAHEAD 8

typedef struct {
    const uint8_t *data;
    Py_ssize_t pos, end;
    uint64_t buf;
    int bits;
    Py_ssize_t marker; /* offset of the marker that stopped reading, -1 if none */
    int insufficient, strict;
} reader_t;

/* a strict decode's refusal */
typedef struct {
    const char *kind; /* "short", "code", "extra", "marker", or NULL: a marker code in code */
    int code;
    Py_ssize_t offset;
    int comp, line, extra;
} failure_t;

typedef struct {
    int mw, mh, v, width, height;
    int32_t maxcode[18], valoffset[18], symbols[256];
    uint16_t lut[1 << LOOKAHEAD]; /* (length << 8 | symbol) of codes up to 8 bits, 0 for longer */
    uint8_t *out;
    int32_t *diff; /* v lines of mcus_per_row * mw */
    int32_t *prev, *cur;
    int first_line;
} comp_t;

static void fill(reader_t *r)
{
    const uint8_t *d = r->data;
    while (r->bits < MIN_GET_BITS && r->marker < 0) {
        if (r->pos >= r->end) {
            r->marker = r->end;
            break;
        }
        unsigned c = d[r->pos++];
        if (c == 0xFF) { /* FF 00 is FF; FF fill bytes, then anything else is a marker */
            while (r->pos < r->end && d[r->pos] == 0xFF)
                r->pos++;
            if (r->pos < r->end && d[r->pos] == 0) {
                r->pos++;
            } else {
                r->marker = r->pos < r->end ? r->pos - 1 : r->end;
                break;
            }
        }
        r->buf = (r->buf << 8) | c;
        r->bits += 8;
    }
}

static inline unsigned peek16(reader_t *r)
{
    if (r->bits < 16)
        fill(r);
    if (r->bits >= 16)
        return (unsigned)(r->buf >> (r->bits - 16)) & 0xFFFF;
    return (unsigned)(r->buf << (16 - r->bits)) & 0xFFFF; /* zero bits past the marker */
}

/* n bits (n <= 17); past the marker, zeros (and insufficient), or strict: -1 */
static inline int take(reader_t *r, int n)
{
    if (r->bits < n) {
        fill(r);
        if (r->bits < n) {
            if (r->strict)
                return -1;
            r->insufficient = 1;
            r->buf <<= n - r->bits;
            r->bits = n;
        }
    }
    r->bits -= n;
    return (int)((r->buf >> r->bits) & ((1u << n) - 1));
}

/* jdmarker.c next_marker from the read position: returns the bytes skipped */
static int next_marker(reader_t *r)
{
    const uint8_t *d = r->data;
    int skipped = 0;
    for (;;) {
        while (r->pos < r->end && d[r->pos] != 0xFF) {
            r->pos++;
            skipped++;
        }
        while (r->pos < r->end && d[r->pos] == 0xFF)
            r->pos++;
        if (r->pos < r->end && d[r->pos] == 0) {
            r->pos++;
            skipped += 2;
            continue;
        }
        r->marker = r->pos < r->end ? r->pos - 1 : r->end;
        return skipped;
    }
}

/* jdlhuff.c process_restart with jdmarker.c read_restart_marker and
 * jpeg_resync_to_restart; 0, or -1 with *f filled (strict) */
static int restart(reader_t *r, int expected, failure_t *f)
{
    int skipped = r->bits / 8;
    r->buf = 0;
    r->bits = 0;
    if (r->marker < 0)
        skipped += next_marker(r);
    int code = r->data[r->marker + 1];
    if (r->strict && (skipped || code != 0xD0 + expected)) {
        f->offset = r->marker;
        f->comp = -1;
        f->line = 0;
        if (skipped) {
            f->kind = "extra";
            f->extra = skipped;
        } else {
            f->kind = NULL;
            f->code = code;
            f->extra = expected;
        }
        return -1;
    }
    while (code != 0xD0 + expected) {
        int action;
        if (code < 0xC0)
            action = 2;
        else if (code < 0xD0 || code > 0xD7)
            action = 3;
        else if (code - 0xD0 == ((expected + 1) & 7) || code - 0xD0 == ((expected + 2) & 7))
            action = 3;
        else if (code - 0xD0 == ((expected - 1) & 7) || code - 0xD0 == ((expected - 2) & 7))
            action = 2;
        else
            action = 1;
        if (action == 1)
            break;
        if (action == 3)
            return 0; /* the marker stays unread: an empty segment */
        r->pos = r->marker + 2;
        next_marker(r);
        code = r->data[r->marker + 1];
    }
    r->pos = r->marker + 2;
    r->marker = -1;
    r->insufficient = 0;
    return 0;
}

static void build_lut(comp_t *c)
{
    for (unsigned look = 0; look < (1u << LOOKAHEAD); look++) {
        c->lut[look] = 0;
        for (int l = 1; l <= LOOKAHEAD; l++) {
            int32_t code = (int32_t)(look >> (LOOKAHEAD - l));
            if (code <= c->maxcode[l]) {
                int32_t k = code + c->valoffset[l];
                if (k >= 0 && k < 256)
                    c->lut[look] = (uint16_t)(l << 8 | (c->symbols[k] & 0xFF));
                break;
            }
        }
    }
}

/* one difference (jdlhuff.c decode_mcus, jdhuff.c jpeg_huff_decode); 0, or -1 (strict) */
static inline int decode_one(reader_t *r, const comp_t *c, int32_t *value, failure_t *f)
{
    if (r->bits < 32)
        fill(r);
    if (r->bits >= 32) { /* fast path: a code of up to 8 bits and its extra bits are there */
        unsigned e = c->lut[(unsigned)(r->buf >> (r->bits - LOOKAHEAD)) & 0xFF];
        if (e) {
            int s = (int)(e & 0xFF);
            r->bits -= (int)(e >> 8);
            if (s == 0) {
                *value = 0;
            } else if (s >= 16) {
                *value = 32768;
            } else {
                r->bits -= s;
                int x = (int)((r->buf >> r->bits) & ((1u << s) - 1));
                *value = x >= (1 << (s - 1)) ? x : x - (1 << s) + 1;
            }
            return 0;
        }
    }
    unsigned look = peek16(r);
    unsigned e = c->lut[look >> (16 - LOOKAHEAD)];
    int l, s;
    if (e) {
        l = (int)(e >> 8);
        s = (int)(e & 0xFF);
    } else {
        l = LOOKAHEAD + 1;
        while (l < 17 && (int32_t)(look >> (16 - l)) > c->maxcode[l])
            l++;
        if (l == 17) { /* JWRN_HUFF_BAD_CODE: 17 bits, symbol 0 */
            if (r->strict) {
                f->kind = "code";
                f->offset = r->pos;
                return -1;
            }
            take(r, 16);
            take(r, 1);
            *value = 0;
            return 0;
        }
        int32_t k = (int32_t)(look >> (16 - l)) + c->valoffset[l];
        s = (k >= 0 && k < 256) ? c->symbols[k] : 0;
    }
    if (take(r, l) < 0)
        goto short_data;
    if (s == 0) {
        *value = 0;
    } else if (s >= 16) {
        *value = 32768;
    } else {
        int x = take(r, s);
        if (x < 0)
            goto short_data;
        *value = x >= (1 << (s - 1)) ? x : x - (1 << s) + 1;
    }
    return 0;
short_data:
    f->kind = "short";
    f->offset = r->marker;
    return -1;
}

static void undifference(comp_t *c, const int32_t *d, int predictor, int initial, int al, uint8_t *out)
{
    int32_t *prev = c->prev, *cur = c->cur;
    int w = c->width;
    uint32_t ra;
    if (c->first_line) {
        ra = (uint32_t)(d[0] + initial) & 0xFFFF;
        cur[0] = (int32_t)ra;
        for (int x = 1; x < w; x++) {
            ra = (uint32_t)(d[x] + (int32_t)ra) & 0xFFFF;
            cur[x] = (int32_t)ra;
        }
        c->first_line = 0;
    } else {
        ra = (uint32_t)(d[0] + prev[0]) & 0xFFFF;
        cur[0] = (int32_t)ra;
#define UNDIFF_LOOP(PRED)                                                                  \
    for (int x = 1; x < w; x++) {                                                          \
        int32_t a = (int32_t)ra, b = prev[x], cc = prev[x - 1];                            \
        (void)a, (void)b, (void)cc;                                                        \
        ra = (uint32_t)(d[x] + (PRED)) & 0xFFFF;                                           \
        cur[x] = (int32_t)ra;                                                              \
    }
        /* jlossls.h; >> of a negative int is arithmetic here, as libjpeg's RIGHT_SHIFT */
        switch (predictor) {
        case 1: UNDIFF_LOOP(a) break;
        case 2: UNDIFF_LOOP(b) break;
        case 3: UNDIFF_LOOP(cc) break;
        case 4: UNDIFF_LOOP(a + b - cc) break;
        case 5: UNDIFF_LOOP(a + ((b - cc) >> 1)) break;
        case 6: UNDIFF_LOOP(b + ((a - cc) >> 1)) break;
        default: UNDIFF_LOOP((a + b) >> 1) break;
        }
#undef UNDIFF_LOOP
    }
    for (int x = 0; x < w; x++)
        out[x] = (uint8_t)((uint32_t)cur[x] << al);
    c->prev = cur;
    c->cur = prev;
}

static int decode(reader_t *r, comp_t *comps, int n, int mcus_per_row, int imcu_rows, int interleaved,
                  int predictor, int al, int restart_interval, failure_t *f)
{
    int initial = 1 << (8 - al - 1);
    int rows_per_interval = restart_interval / mcus_per_row, rows_to_go = rows_per_interval, next_restart = 0;
    for (int k = 0; k < n; k++)
        comps[k].first_line = 1;
    for (int imcu = 0; imcu < imcu_rows; imcu++) {
        int last = imcu == imcu_rows - 1, lines[MAX_COMPS];
        for (int k = 0; k < n; k++)
            lines[k] = last ? comps[k].height - comps[k].v * (imcu_rows - 1) : comps[k].v;
        int mcu_rows = interleaved ? 1 : lines[0];
        for (int y = 0; y < mcu_rows; y++) {
            if (restart_interval && rows_to_go == 0) {
                if (restart(r, next_restart, f) < 0)
                    return -1;
                next_restart = (next_restart + 1) & 7;
                for (int k = 0; k < n; k++)
                    comps[k].first_line = 1;
                rows_to_go = rows_per_interval;
            }
            if (r->insufficient) { /* no data left: zeros, the predictor reset */
                for (int k = 0; k < n; k++) {
                    int stride = mcus_per_row * comps[k].mw;
                    if (interleaved)
                        memset(comps[k].diff, 0, sizeof(int32_t) * (size_t)stride * comps[k].mh);
                    else
                        memset(comps[k].diff + (size_t)y * stride, 0, sizeof(int32_t) * (size_t)stride);
                    comps[k].first_line = 1;
                }
            } else {
                for (int mx = 0; mx < mcus_per_row; mx++) {
                    for (int k = 0; k < n; k++) {
                        comp_t *c = &comps[k];
                        int stride = mcus_per_row * c->mw;
                        for (int yy = 0; yy < c->mh; yy++) {
                            int32_t *row = c->diff + (size_t)(y + yy) * stride + (size_t)mx * c->mw;
                            for (int xx = 0; xx < c->mw; xx++) {
                                if (decode_one(r, c, row + xx, f) < 0) {
                                    f->comp = k;
                                    f->line = imcu * c->v + y + yy;
                                    f->extra = 0;
                                    return -1;
                                }
                            }
                        }
                    }
                }
            }
            if (restart_interval)
                rows_to_go--;
        }
        for (int k = 0; k < n; k++) {
            comp_t *c = &comps[k];
            int stride = mcus_per_row * c->mw;
            for (int line = 0; line < lines[k]; line++)
                undifference(c, c->diff + (size_t)line * stride, predictor, initial, al,
                             c->out + ((size_t)imcu * c->v + line) * c->width);
        }
    }
    if (r->strict) { /* nothing but fill bytes after the last code */
        int skipped = r->bits / 8;
        if (r->marker < 0)
            skipped += next_marker(r);
        if (skipped || r->marker != r->end) {
            f->kind = skipped ? "extra" : "marker";
            f->offset = r->marker;
            f->comp = -1;
            f->line = 0;
            f->extra = skipped;
            return -1;
        }
    }
    return 0;
}

static int table_from(PyObject *obj, void *dst, Py_ssize_t size, const char *what)
{
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_SIMPLE) < 0)
        return -1;
    if (b.len != size) {
        PyErr_Format(PyExc_ValueError, "%s must be %zd bytes, got %zd", what, size, b.len);
        PyBuffer_Release(&b);
        return -1;
    }
    memcpy(dst, b.buf, (size_t)size);
    PyBuffer_Release(&b);
    return 0;
}

static PyObject *decode_scan(PyObject *self, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t start, end;
    PyObject *comp_list;
    int mcus_per_row, imcu_rows, interleaved, predictor, al, restart_interval, strict;
    if (!PyArg_ParseTuple(args, "y*nnOiipiiip:decode_scan", &data, &start, &end, &comp_list, &mcus_per_row,
                          &imcu_rows, &interleaved, &predictor, &al, &restart_interval, &strict))
        return NULL;
    comp_t comps[MAX_COMPS];
    Py_buffer outs[MAX_COMPS];
    int n = 0;
    memset(comps, 0, sizeof comps);
    PyObject *result = NULL;
    if (!PyList_Check(comp_list) || PyList_GET_SIZE(comp_list) < 1 || PyList_GET_SIZE(comp_list) > MAX_COMPS) {
        PyErr_SetString(PyExc_ValueError, "comps must be a list of 1..4 components");
        goto done;
    }
    if (start < 0 || start > end || end + 2 > data.len || mcus_per_row < 1 || imcu_rows < 1 || predictor < 1 ||
        predictor > 7 || al < 0 || al > 7 || restart_interval < 0 || restart_interval % mcus_per_row) {
        PyErr_SetString(PyExc_ValueError, "scan parameters out of range");
        goto done;
    }
    for (; n < PyList_GET_SIZE(comp_list); n++) {
        PyObject *t = PyList_GET_ITEM(comp_list, n);
        comp_t *c = &comps[n];
        PyObject *maxcode, *valoffset, *symbols, *out;
        if (!PyArg_ParseTuple(t, "iiiiiOOOO", &c->mw, &c->mh, &c->v, &c->width, &c->height, &maxcode, &valoffset,
                              &symbols, &out))
            goto done;
        if (PyObject_GetBuffer(out, &outs[n], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        if (c->mw < 1 || c->mh < 1 || c->v < 1 || c->v > 4 || c->mw > 4 || c->mh != (interleaved ? c->v : 1) ||
            c->width < 1 || c->height < 1 || (long long)mcus_per_row * c->mw < c->width ||
            (long long)imcu_rows * c->v < c->height || (long long)(imcu_rows - 1) * c->v >= c->height ||
            outs[n].len != (Py_ssize_t)c->width * c->height || (!interleaved && PyList_GET_SIZE(comp_list) != 1)) {
            PyErr_SetString(PyExc_ValueError, "component geometry out of range");
            n++;
            goto done;
        }
        if (table_from(maxcode, c->maxcode, sizeof c->maxcode, "maxcode") < 0 ||
            table_from(valoffset, c->valoffset, sizeof c->valoffset, "valoffset") < 0 ||
            table_from(symbols, c->symbols, sizeof c->symbols, "symbols") < 0) {
            n++;
            goto done;
        }
        c->maxcode[17] = 0xFFFFF; /* ends every search */
        c->out = outs[n].buf;
        size_t stride = (size_t)mcus_per_row * c->mw;
        c->diff = calloc(stride * c->v, sizeof(int32_t));
        c->prev = calloc((size_t)c->width, sizeof(int32_t));
        c->cur = calloc((size_t)c->width, sizeof(int32_t));
        if (!c->diff || !c->prev || !c->cur) {
            PyErr_NoMemory();
            n++;
            goto done;
        }
        build_lut(c);
    }
    reader_t r = {data.buf, start, end, 0, 0, -1, 0, strict};
    failure_t f = {0};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = decode(&r, comps, n, mcus_per_row, imcu_rows, interleaved, predictor, al, restart_interval, &f);
    Py_END_ALLOW_THREADS
    if (status == 0) {
        result = Py_NewRef(Py_None);
    } else if (f.kind) {
        result = Py_BuildValue("(sniii)", f.kind, f.offset, f.comp, f.line, f.extra);
    } else {
        result = Py_BuildValue("(iniii)", f.code, f.offset, f.comp, f.line, f.extra);
    }
done:
    for (int k = 0; k < n; k++) {
        free(comps[k].diff);
        free(comps[k].prev); /* the two line buffers, swapped line by line */
        free(comps[k].cur);
        PyBuffer_Release(&outs[k]);
    }
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_scan", decode_scan, METH_VARARGS,
     "decode_scan(data, start, end, comps, mcus_per_row, imcu_rows, interleaved, predictor, al, restart, strict): "
     "one lossless scan into the components' uint8 outputs; None, or a strict refusal (kind, offset, comp, line, extra)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lossless", "Lossless JPEG scans, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__lossless(void)
{
    return PyModule_Create(&module);
}

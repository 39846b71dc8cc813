/*
 * Reading a JPEG file's quantized coefficients with libjpeg-turbo, per call.
 *
 * files.py passes the path of the libjpeg-turbo 2.1 that jpeglib ships
 * (cjpeglib_turbo210, a plain shared object exporting the libjpeg API). This
 * module loads it, and each read runs a decompressor on its own: the file
 * from memory (a jpeg_source_mgr over the caller's bytes), libjpeg's messages
 * into per-call buffers (an error manager whose emit_message keeps each
 * warning with the byte offset libjpeg had read up to, and whose error_exit
 * keeps the error and longjmps back here), the GIL released meanwhile. No
 * temporary file, no file descriptor, nothing shared between calls.
 *
 * Facts relied on (libjpeg-turbo 2.1's jpeglib.h and jmorecfg.h as jpeglib
 * builds them: JPEG_LIB_VERSION 70, BITS_IN_JSAMPLE 8, no lossless):
 *
 * - boolean is int, JDIMENSION unsigned int, UINT8 unsigned char, JCOEF
 *   short, JOCTET unsigned char, and UINT16 unsigned int (jpeglib's empty
 *   jconfig.h leaves HAVE_UNSIGNED_SHORT undefined): quantization tables
 *   hold 64 unsigned ints; the structs below are declared here
 *   field for field, up to the last field this file touches (the decompressor
 *   in full: its size is checked).
 * - jpeg_CreateDecompress(cinfo, version, structsize) reports a version or
 *   struct size different from its own through error_exit: load() runs it
 *   once, so a library with another layout is refused, not misread. A size
 *   check cannot see a field's type hidden by padding (UINT16 was one), so
 *   files.py also reads back a file it wrote itself before using this.
 * - emit_message(cinfo, level) gets every warning (level -1: jerror.c's
 *   WARNMS, libjpeg's "corrupt data" messages) and every trace (level >= 0);
 *   jpeg_std_error's version outputs only the first warning, so this module
 *   replaces it to keep them all (the first WARNINGS_KEPT, and their count).
 *   Errors go to error_exit, which must not return. At each message,
 *   src->next_input_byte is how far libjpeg has consumed the file (the
 *   Huffman decoder reads ahead of it by at most the current MCU).
 * - After jpeg_read_coefficients, component ci's blocks are rows of its
 *   virtual array: height_in_blocks rows of width_in_blocks JBLOCKs (64 JCOEF
 *   in natural order), read through mem->access_virt_barray one row at a time.
 *   They come back as float32 (every JCOEF is exact there), in arrays this
 *   module allocates and hands to Python without a copy.
 *   The array has rows up to a multiple of v_samp_factor: a row past the last
 *   (MCU padding) holds the DC values an interleaved DC scan coded for it,
 *   which block smoothing reads (diffjpeg/stages/smoothing.py); its DCs are returned.
 * - In progressive mode cinfo->coef_bits[ci][k] (int, 32-bit on every
 *   platform Python supports) is, after the last scan libjpeg read, the Al of
 *   the last scan that coded zigzag coefficient k of component ci, -1 if none
 *   did; rows num_components + ci hold, for k in 0..9 once ci had a DC scan,
 *   the same before ci's last scan (jdphuff.c/jdarith.c start_pass; the
 *   array has 2 * num_components rows of 64). master->last_good_iMCU_row
 *   (jpegint.h's struct jpeg_decomp_master, declared below up to it, zeroed
 *   by jpeg_CreateDecompress) is the last iMCU row whose MCUs the entropy
 *   decoder began with data left (jdcoefct.c consume_data): block
 *   smoothing takes the earlier state for the rows after it.
 * - A source manager that runs out of data warns JWRN_JPEG_EOF and inserts a
 *   fake EOI, as jpeg_mem_src does (the code of that warning is found by its
 *   text in the library's message table).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#ifdef _WIN32
#include <windows.h>
#define OPEN_LIBRARY(path) ((void *)LoadLibraryA(path))
#define FIND_SYMBOL(handle, name) ((void *)GetProcAddress((HMODULE)(handle), name))
#else
#include <dlfcn.h>
#define OPEN_LIBRARY(path) dlopen(path, RTLD_NOW | RTLD_LOCAL)
#define FIND_SYMBOL(handle, name) dlsym(handle, name)
#endif

#define LIB_VERSION 70
#define MESSAGE_LENGTH 200 /* JMSG_LENGTH_MAX */
#define WARNINGS_KEPT 16
#define NUM_QUANT_TABLES 4
#define MAX_COMPONENTS 4 /* what files.py reads: grayscale, YCbCr, RGB, CMYK, YCCK */

typedef int boolean;
typedef unsigned int JDIMENSION;
typedef unsigned int UINT16; /* jpeglib's build leaves HAVE_UNSIGNED_SHORT undefined */
typedef short JCOEF;
typedef JCOEF JBLOCK[64];
typedef JBLOCK *JBLOCKROW;
typedef JBLOCKROW *JBLOCKARRAY;

struct common;
struct decompress;

struct error_mgr {
    void (*error_exit)(struct common *);
    void (*emit_message)(struct common *, int);
    void (*output_message)(struct common *);
    void (*format_message)(struct common *, char *);
    void (*reset_error_mgr)(struct common *);
    int msg_code;
    union {
        int i[8];
        char s[80];
    } msg_parm;
    int trace_level;
    long num_warnings;
    const char *const *jpeg_message_table;
    int last_jpeg_message;
    const char *const *addon_message_table;
    int first_addon_message;
    int last_addon_message;
};

struct memory_mgr {
    void *alloc_small, *alloc_large, *alloc_sarray, *alloc_barray;
    void *request_virt_sarray, *request_virt_barray, *realize_virt_arrays, *access_virt_sarray;
    JBLOCKARRAY (*access_virt_barray)(struct common *, void *, JDIMENSION, JDIMENSION, boolean);
};

struct source_mgr {
    const unsigned char *next_input_byte;
    size_t bytes_in_buffer;
    void (*init_source)(struct decompress *);
    boolean (*fill_input_buffer)(struct decompress *);
    void (*skip_input_data)(struct decompress *, long);
    boolean (*resync_to_restart)(struct decompress *, int);
    void (*term_source)(struct decompress *);
};

typedef struct {
    UINT16 quantval[64];
    boolean sent_table;
} quant_table;

typedef struct {
    int component_id, component_index, h_samp_factor, v_samp_factor, quant_tbl_no;
    int dc_tbl_no, ac_tbl_no;
    JDIMENSION width_in_blocks, height_in_blocks;
    int DCT_h_scaled_size, DCT_v_scaled_size;
    JDIMENSION downsampled_width, downsampled_height;
    boolean component_needed;
    int MCU_width, MCU_height, MCU_blocks, MCU_sample_width, last_col_width, last_row_height;
    quant_table *quant_table;
    void *dct_table;
} component_info;

#define JPEG_COMMON_FIELDS                 \
    struct error_mgr *err;            \
    struct memory_mgr *mem;           \
    void *progress;                   \
    void *client_data;                \
    boolean is_decompressor;          \
    int global_state

struct common {
    JPEG_COMMON_FIELDS;
};

/* libjpeg-turbo 2.1's struct jpeg_decomp_master (jpegint.h); its arrays have libjpeg's MAX_COMPONENTS, 10. */
struct decomp_master {
    void (*prepare_for_output_pass)(struct decompress *);
    void (*finish_output_pass)(struct decompress *);
    boolean is_dummy_pass;
    JDIMENSION first_iMCU_col, last_iMCU_col;
    JDIMENSION first_MCU_col[10], last_MCU_col[10];
    boolean jinit_upsampler_no_alloc;
    JDIMENSION last_good_iMCU_row;
};

struct decompress {
    JPEG_COMMON_FIELDS;
    struct source_mgr *src;
    JDIMENSION image_width, image_height;
    int num_components;
    int jpeg_color_space;
    int out_color_space;
    unsigned int scale_num, scale_denom;
    double output_gamma;
    boolean buffered_image, raw_data_out;
    int dct_method;
    boolean do_fancy_upsampling, do_block_smoothing, quantize_colors;
    int dither_mode;
    boolean two_pass_quantize;
    int desired_number_of_colors;
    boolean enable_1pass_quant, enable_external_quant, enable_2pass_quant;
    JDIMENSION output_width, output_height;
    int out_color_components, output_components, rec_outbuf_height;
    int actual_number_of_colors;
    unsigned char **colormap;
    JDIMENSION output_scanline;
    int input_scan_number;
    JDIMENSION input_iMCU_row;
    int output_scan_number;
    JDIMENSION output_iMCU_row;
    int (*coef_bits)[64];
    quant_table *quant_tbl_ptrs[NUM_QUANT_TABLES];
    void *dc_huff_tbl_ptrs[4], *ac_huff_tbl_ptrs[4];
    int data_precision;
    component_info *comp_info;
    boolean progressive_mode, arith_code;
    unsigned char arith_dc_L[16], arith_dc_U[16], arith_ac_K[16];
    unsigned int restart_interval;
    boolean saw_JFIF_marker;
    unsigned char JFIF_major_version, JFIF_minor_version, density_unit;
    UINT16 X_density, Y_density;
    boolean saw_Adobe_marker;
    unsigned char Adobe_transform;
    boolean CCIR601_sampling;
    void *marker_list;
    int max_h_samp_factor, max_v_samp_factor;
    int min_DCT_h_scaled_size, min_DCT_v_scaled_size;
    JDIMENSION total_iMCU_rows;
    unsigned char *sample_range_limit;
    int comps_in_scan;
    component_info *cur_comp_info[4];
    JDIMENSION MCUs_per_row, MCU_rows_in_scan;
    int blocks_in_MCU;
    int MCU_membership[10];
    int Ss, Se, Ah, Al;
    int unread_marker;
    struct decomp_master *master;
    void *main, *coef, *post, *inputctl, *marker, *entropy, *idct, *upsample, *cconvert, *cquantize;
};

/* The libjpeg functions used, resolved from the loaded library. */
typedef struct {
    struct error_mgr *(*std_error)(struct error_mgr *);
    void (*create)(struct decompress *, int, size_t);
    int (*read_header)(struct decompress *, boolean);
    void **(*read_coefficients)(struct decompress *);
    boolean (*finish)(struct decompress *);
    void (*destroy)(struct decompress *);
    boolean (*resync_to_restart)(struct decompress *, int);
    int eof_warning; /* the message code of JWRN_JPEG_EOF */
} library;

/* One call: the error manager first, so that cinfo->err leads back here. */
typedef struct {
    struct error_mgr err;
    jmp_buf escape;
    const library *lib;
    struct decompress cinfo;
    struct source_mgr source;
    const unsigned char *data;
    size_t size;
    char warnings[WARNINGS_KEPT][MESSAGE_LENGTH];
    size_t warning_offsets[WARNINGS_KEPT];
    long warnings_total;
    char error[MESSAGE_LENGTH]; /* libjpeg's error, if it failed */
    size_t error_offset;
    int failed;
    const char *refused; /* a reason of ours, not libjpeg's */
    int components;
    JDIMENSION rows[MAX_COMPONENTS], cols[MAX_COMPONENTS];
    int factors[MAX_COMPONENTS][2], table_slot[MAX_COMPONENTS];
    float *blocks[MAX_COMPONENTS]; /* the coefficients as float32, handed to Python without a copy */
    float *out[MAX_COMPONENTS];    /* or the caller's buffers (read_batch: slices of the batch), not ours to free */
    size_t out_bytes[MAX_COMPONENTS];
    int outs;                      /* how many the caller gave: 0, or one per component */
    JCOEF *padding_dc[MAX_COMPONENTS]; /* DCs of the MCU padding row under the last, or NULL */
    int progressive, scans;
    JDIMENSION last_good_row;
    int coef_bits[MAX_COMPONENTS][128]; /* libjpeg's after the last scan, then before it (0..9; -1 past) */
    int has_table[NUM_QUANT_TABLES];
    unsigned short tables[NUM_QUANT_TABLES][64];
} call;

/* Coefficient arrays: written once, row by row, then handed to Python as
 * they are. Large ones ask for transparent huge pages on the 2 MiB-aligned
 * part and are faulted in by one call (Linux; advice only, as in
 * _native.c's prepare_pages), which spares most of the page faults. */
#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23
#endif
static float *new_floats(size_t bytes) {
    float *data = malloc(bytes ? bytes : 1);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)1 << 21, page = 4096;
    uintptr_t start = ((uintptr_t)data + huge - 1) & ~(huge - 1), end = ((uintptr_t)data + bytes) & ~(huge - 1);
    if (data != NULL && bytes >= 2 * huge && end > start) {
        madvise((void *)start, end - start, MADV_HUGEPAGE);
        start = (uintptr_t)data & ~(page - 1), end = ((uintptr_t)data + bytes + page - 1) & ~(page - 1);
        madvise((void *)start, end - start, MADV_POPULATE_WRITE);
    }
#endif
    return data;
}

/* How far libjpeg has read: an offset into the caller's bytes, or their
 * size once the source has run dry (its fake EOI). */
static size_t input_offset(const call *c) {
    const struct source_mgr *src = c->cinfo.src;
    if (src == NULL || src->next_input_byte < c->data || src->next_input_byte > c->data + c->size)
        return src == NULL ? 0 : c->size;
    return (size_t)(src->next_input_byte - c->data);
}

static void keep_warning(struct common *cinfo) {
    call *c = (call *)cinfo->err;
    if (c->warnings_total < WARNINGS_KEPT) {
        c->err.format_message(cinfo, c->warnings[c->warnings_total]);
        c->warning_offsets[c->warnings_total] = input_offset(c);
    }
    c->warnings_total++;
}

static void emit(struct common *cinfo, int level) {
    if (level < 0) { /* a warning; traces are dropped, as trace_level 0 drops them */
        cinfo->err->num_warnings++;
        keep_warning(cinfo);
    }
}

static void escape(struct common *cinfo) {
    call *c = (call *)cinfo->err;
    c->err.format_message(cinfo, c->error);
    c->error_offset = input_offset(c);
    c->failed = 1;
    longjmp(c->escape, 1);
}

static void source_init(struct decompress *cinfo) { (void)cinfo; }
static void source_term(struct decompress *cinfo) { (void)cinfo; }

static boolean source_fill(struct decompress *cinfo) {
    static const unsigned char fake_eoi[2] = {0xFF, 0xD9};
    cinfo->err->msg_code = ((call *)cinfo->err)->lib->eof_warning;
    cinfo->err->emit_message((struct common *)cinfo, -1);
    cinfo->src->next_input_byte = fake_eoi;
    cinfo->src->bytes_in_buffer = 2;
    return 1;
}

static void source_skip(struct decompress *cinfo, long count) {
    struct source_mgr *src = cinfo->src;
    if (count <= 0)
        return;
    if ((unsigned long)count > src->bytes_in_buffer) {
        src->bytes_in_buffer = 0;
        source_fill(cinfo);
        return;
    }
    src->next_input_byte += count;
    src->bytes_in_buffer -= (size_t)count;
}

static void start(call *c) {
    memset(&c->err, 0, sizeof c->err);
    c->lib->std_error(&c->err);
    c->err.error_exit = escape;
    c->err.emit_message = emit;
    c->err.output_message = keep_warning; /* only emit_message calls it, and this one does not */
    memset(&c->cinfo, 0, sizeof c->cinfo);
    c->cinfo.err = &c->err;
}

/* Runs without the GIL. The setjmp is here, and every value that changes
 * after it lives in *c, which belongs to the caller's frame. */
static void decode(call *c) {
    struct decompress *cinfo = &c->cinfo;
    start(c);
    if (setjmp(c->escape))
        goto done;
    c->lib->create(cinfo, LIB_VERSION, sizeof *cinfo);
    c->source.next_input_byte = c->data;
    c->source.bytes_in_buffer = c->size;
    c->source.init_source = source_init;
    c->source.fill_input_buffer = source_fill;
    c->source.skip_input_data = source_skip;
    c->source.resync_to_restart = c->lib->resync_to_restart;
    c->source.term_source = source_term;
    cinfo->src = &c->source;
    if (c->lib->read_header(cinfo, 1) != 1) { /* JPEG_HEADER_OK */
        c->refused = "no image in the datastream";
        goto done;
    }
    if (cinfo->num_components != 1 && cinfo->num_components != 3 && cinfo->num_components != MAX_COMPONENTS) {
        c->refused = "not 1, 3 or 4 components";
        goto done;
    }
    c->components = cinfo->num_components;
    for (int ci = 0; ci < c->components; ci++) {
        const component_info *comp = &cinfo->comp_info[ci];
        /* a wrong component_info layout would show here first */
        if (comp->component_index != ci || comp->h_samp_factor < 1 || comp->h_samp_factor > 4 ||
            comp->v_samp_factor < 1 || comp->v_samp_factor > 4 || comp->quant_tbl_no < 0 ||
            comp->quant_tbl_no >= NUM_QUANT_TABLES) {
            c->refused = "unexpected component description from libjpeg";
            goto done;
        }
    }
    void **arrays = c->lib->read_coefficients(cinfo);
    if (arrays == NULL) {
        c->refused = "libjpeg returned no coefficients";
        goto done;
    }
    for (int ci = 0; ci < c->components; ci++) {
        const component_info *comp = &cinfo->comp_info[ci];
        JDIMENSION rows = comp->height_in_blocks, cols = comp->width_in_blocks;
        size_t row_values = (size_t)cols * 64, row_bytes = row_values * sizeof(float);
        if (rows == 0 || cols == 0 || row_bytes / (64 * sizeof(float)) != cols || (size_t)rows > SIZE_MAX / row_bytes) {
            c->refused = "impossible block counts";
            goto done;
        }
        if (c->outs != 0 && (c->outs != c->components || c->out_bytes[ci] != (size_t)rows * row_bytes)) {
            c->refused = "its block counts differ from the batch's";
            goto done;
        }
        float *blocks = c->outs != 0 ? c->out[ci] : (c->blocks[ci] = new_floats((size_t)rows * row_bytes));
        if (blocks == NULL) {
            c->refused = "out of memory for the coefficients";
            goto done;
        }
        for (JDIMENSION r = 0; r < rows; r++) {
            JBLOCKARRAY row = cinfo->mem->access_virt_barray((struct common *)cinfo, arrays[ci], r, 1, 0);
            const JCOEF *from = row[0][0];
            float *to = blocks + (size_t)r * row_values;
            for (size_t k = 0; k < row_values; k++) /* vectorizes: widen, convert */
                to[k] = (float)from[k];
        }
        if (rows % (JDIMENSION)comp->v_samp_factor != 0) {
            c->padding_dc[ci] = malloc((size_t)cols * sizeof(JCOEF));
            if (c->padding_dc[ci] == NULL) {
                c->refused = "out of memory for the coefficients";
                goto done;
            }
            JBLOCKARRAY row = cinfo->mem->access_virt_barray((struct common *)cinfo, arrays[ci], rows, 1, 0);
            for (JDIMENSION k = 0; k < cols; k++)
                c->padding_dc[ci][k] = row[0][k][0];
        }
        if (cinfo->progressive_mode && cinfo->coef_bits != NULL) {
            memcpy(c->coef_bits[ci], cinfo->coef_bits[ci], 64 * sizeof(int));
            int coded = cinfo->coef_bits[ci][0] >= 0; /* the earlier state is set from ci's first scan on */
            for (int k = 0; k < 64; k++) /* and only for 0..9 */
                c->coef_bits[ci][64 + k] = coded && k < 10 ? cinfo->coef_bits[c->components + ci][k] : -1;
        }
        c->rows[ci] = rows;
        c->cols[ci] = cols;
        c->factors[ci][0] = comp->h_samp_factor;
        c->factors[ci][1] = comp->v_samp_factor;
        c->table_slot[ci] = comp->quant_tbl_no;
    }
    /* Each slot's table as the decoder used it: the copy libjpeg latched for
     * a component when its first scan began (jdinput.c, latch_quant_tables),
     * not the slot's latest definition, which a DQT after that scan may have
     * replaced. Components that share a slot latch the same table unless a
     * DQT redefines it between their first scans: the first one's is taken. */
    for (int slot = 0; slot < NUM_QUANT_TABLES; slot++) {
        const quant_table *table = cinfo->quant_tbl_ptrs[slot];
        for (int ci = cinfo->num_components - 1; ci >= 0; ci--)
            if (cinfo->comp_info[ci].quant_tbl_no == slot && cinfo->comp_info[ci].quant_table != NULL)
                table = cinfo->comp_info[ci].quant_table;
        if (table != NULL) {
            for (int k = 0; k < 64; k++) /* a DQT entry has at most 16 bits */
                c->tables[slot][k] = (unsigned short)table->quantval[k];
            c->has_table[slot] = 1;
        }
    }
    c->progressive = cinfo->progressive_mode && cinfo->coef_bits != NULL;
    c->scans = cinfo->input_scan_number;
    c->last_good_row = cinfo->master->last_good_iMCU_row;
    c->lib->finish(cinfo);
done:
    c->lib->destroy(cinfo); /* safe after any error: it checks what exists */
}

static void release(call *c) {
    for (int ci = 0; ci < MAX_COMPONENTS; ci++) {
        free(c->blocks[ci]);
        c->blocks[ci] = NULL;
        free(c->padding_dc[ci]);
        c->padding_dc[ci] = NULL;
    }
}

/* A float32 array malloc'd here, as a Python object with the buffer
 * protocol (numpy and torch view it without a copy); freed with it. */
typedef struct {
    PyObject_HEAD
    float *data;
    Py_ssize_t count, itemsize;
} floats;

static int floats_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    floats *f = (floats *)self;
    (void)flags; /* contiguous, writable, any layout the caller asks for */
    view->obj = self;
    Py_INCREF(self);
    view->buf = f->data;
    view->len = f->count * f->itemsize;
    view->readonly = 0;
    view->itemsize = f->itemsize;
    view->format = "f";
    view->ndim = 1;
    view->shape = &f->count;
    view->strides = &f->itemsize;
    view->suboffsets = NULL;
    view->internal = NULL;
    return 0;
}

static void floats_dealloc(PyObject *self) {
    free(((floats *)self)->data);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs floats_buffer = {floats_getbuffer, NULL};

static PyTypeObject floats_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "diffjpeg.backends._libjpeg.Floats",
    .tp_basicsize = sizeof(floats),
    .tp_dealloc = floats_dealloc,
    .tp_as_buffer = &floats_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "float32 coefficients read by libjpeg (the buffer protocol; numpy.frombuffer views them)",
};

/* *data (count floats) in a new Floats, which now owns it: *data is NULL after. */
static PyObject *owned_floats(float **data, Py_ssize_t count) {
    floats *f = PyObject_New(floats, &floats_type);
    if (f == NULL)
        return NULL;
    f->data = *data;
    f->count = count;
    f->itemsize = (Py_ssize_t)sizeof(float);
    *data = NULL;
    return (PyObject *)f;
}

static PyObject *new_none(void) {
    Py_INCREF(Py_None);
    return Py_None;
}

static const char CAPSULE[] = "diffjpeg.backends._libjpeg.library";

static const library *get_library(PyObject *capsule) {
    return (const library *)PyCapsule_GetPointer(capsule, CAPSULE);
}

/* [(offset, text)] of the warnings kept, then (total, None) if more came. */
static PyObject *warning_list(const call *c) {
    PyObject *list = PyList_New(0);
    long kept = c->warnings_total < WARNINGS_KEPT ? c->warnings_total : WARNINGS_KEPT;
    for (long i = 0; list != NULL && i < kept; i++) {
        const char *text = c->warnings[i];
        PyObject *item = Py_BuildValue("(nN)", (Py_ssize_t)c->warning_offsets[i],
                                       PyUnicode_DecodeLatin1(text, (Py_ssize_t)strnlen(text, MESSAGE_LENGTH), NULL));
        if (item == NULL || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    if (list != NULL && c->warnings_total > kept) {
        PyObject *item = Py_BuildValue("(lO)", c->warnings_total, Py_None);
        if (item == NULL || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

/* jpeg_CreateDecompress with a given version and struct size: libjpeg's
 * message if it refuses them, else None. */
static PyObject *check(const library *lib, int version, size_t size) {
    call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return PyErr_NoMemory();
    c->lib = lib;
    start(c);
    if (!setjmp(c->escape))
        lib->create(&c->cinfo, version, size);
    lib->destroy(&c->cinfo);
    PyObject *result = c->failed ? PyUnicode_DecodeLatin1(c->error, (Py_ssize_t)strnlen(c->error, MESSAGE_LENGTH), NULL)
                                 : new_none();
    free(c);
    return result;
}

static PyObject *py_probe(PyObject *self, PyObject *args) {
    PyObject *capsule;
    int version;
    Py_ssize_t delta;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oin", &capsule, &version, &delta))
        return NULL;
    const library *lib = get_library(capsule);
    if (lib == NULL)
        return NULL;
    if (delta < 0 && (size_t)(-delta) >= sizeof(struct decompress)) {
        PyErr_SetString(PyExc_ValueError, "size delta out of range");
        return NULL;
    }
    /* a larger claimed size never gets written: the check comes first */
    return check(lib, version, sizeof(struct decompress) + (size_t)delta);
}

static void free_library(PyObject *capsule) {
    /* the shared object stays loaded: jpeglib may use it too */
    free(PyCapsule_GetPointer(capsule, CAPSULE));
}

static PyObject *py_load(PyObject *self, PyObject *args) {
    const char *path;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &path))
        return NULL;
    void *handle = OPEN_LIBRARY(path);
    if (handle == NULL)
        return PyErr_Format(PyExc_OSError, "cannot load libjpeg from %s", path);
    library *lib = calloc(1, sizeof *lib);
    if (lib == NULL)
        return PyErr_NoMemory();
    static const char *names[] = {"jpeg_std_error", "jpeg_CreateDecompress", "jpeg_read_header", "jpeg_read_coefficients",
                                  "jpeg_finish_decompress", "jpeg_destroy_decompress", "jpeg_resync_to_restart"};
    void *found[7];
    for (int i = 0; i < 7; i++) {
        found[i] = FIND_SYMBOL(handle, names[i]);
        if (found[i] == NULL) {
            free(lib);
            return PyErr_Format(PyExc_OSError, "%s has no %s", path, names[i]);
        }
    }
    /* function pointers from dlsym's void *: POSIX guarantees the round trip */
    memcpy(&lib->std_error, &found[0], sizeof found[0]);
    memcpy(&lib->create, &found[1], sizeof found[1]);
    memcpy(&lib->read_header, &found[2], sizeof found[2]);
    memcpy(&lib->read_coefficients, &found[3], sizeof found[3]);
    memcpy(&lib->finish, &found[4], sizeof found[4]);
    memcpy(&lib->destroy, &found[5], sizeof found[5]);
    memcpy(&lib->resync_to_restart, &found[6], sizeof found[6]);

    struct error_mgr err;
    memset(&err, 0, sizeof err);
    lib->std_error(&err);
    lib->eof_warning = -1;
    for (int code = 0; code <= err.last_jpeg_message && err.jpeg_message_table != NULL; code++) {
        const char *text = err.jpeg_message_table[code];
        if (text != NULL && strcmp(text, "Premature end of JPEG file") == 0)
            lib->eof_warning = code;
    }
    if (lib->eof_warning < 0) {
        free(lib);
        return PyErr_Format(PyExc_OSError, "%s: no 'Premature end of JPEG file' message, not a libjpeg this module knows", path);
    }
    PyObject *refused = check(lib, LIB_VERSION, sizeof(struct decompress));
    if (refused != Py_None) {
        free(lib);
        if (refused == NULL)
            return NULL;
        PyErr_Format(PyExc_OSError, "%s does not match this module's libjpeg %d layout: %U", path, LIB_VERSION, refused);
        Py_DECREF(refused);
        return NULL;
    }
    Py_DECREF(refused);
    PyObject *capsule = PyCapsule_New(lib, CAPSULE, free_library);
    if (capsule == NULL)
        free(lib);
    return capsule;
}

/* read(library, data, out=None) -> (warnings, refused, components, tables, progress)
 * warnings: [(offset, text)], libjpeg's warnings in order with how far it had
 * read (the first WARNINGS_KEPT; then (total, None) if there were more);
 * refused: None, or why no coefficients came back: (offset, libjpeg's error),
 * or a reason of ours (a str);
 * out (optional): one writable C-contiguous buffer per component, of exactly
 * its float32 blocks' size, written in place of new Floats (then None below);
 * components: [(rows, cols, h, v, slot, float32 coefficients (a Floats buffer, or None: out),
 *               padding row DCs: int16 bytes or None,
 *               coef_bits: 128 int32 bytes (progressive: after the last scan, then
 *               before the component's last scan, 0..9 only) or None)];
 * tables: 4 x (bytes or None);
 * progress: (scans read, last good iMCU row) of a progressive file, else None. */
static PyObject *py_read(PyObject *self, PyObject *args) {
    PyObject *capsule, *out = Py_None;
    Py_buffer data, views[MAX_COMPONENTS];
    int outs = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oy*|O", &capsule, &data, &out))
        return NULL;
    if (out != Py_None) { /* writable C-contiguous buffers, one per component */
        PyObject *seq = PySequence_Fast(out, "out must be a sequence of writable buffers");
        Py_ssize_t n = seq == NULL ? -1 : PySequence_Fast_GET_SIZE(seq);
        if (n > MAX_COMPONENTS) {
            PyErr_SetString(PyExc_ValueError, "out has more buffers than a JPEG has components");
            n = -1;
        }
        for (Py_ssize_t i = 0; i < n; i++, outs++)
            if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &views[i], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
                n = -1;
                break;
            }
        Py_XDECREF(seq);
        if (n < 0) {
            for (int i = 0; i < outs; i++)
                PyBuffer_Release(&views[i]);
            PyBuffer_Release(&data);
            return NULL;
        }
    }
    const library *lib = get_library(capsule);
    call *c = lib == NULL ? NULL : calloc(1, sizeof *c);
    if (c == NULL) {
        for (int i = 0; i < outs; i++)
            PyBuffer_Release(&views[i]);
        PyBuffer_Release(&data);
        return lib == NULL ? NULL : PyErr_NoMemory();
    }
    c->lib = lib;
    c->data = data.buf;
    c->size = (size_t)data.len;
    c->outs = outs;
    for (int i = 0; i < outs; i++) {
        c->out[i] = views[i].buf;
        c->out_bytes[i] = (size_t)views[i].len;
    }
    Py_BEGIN_ALLOW_THREADS
    decode(c);
    Py_END_ALLOW_THREADS
    for (int i = 0; i < outs; i++)
        PyBuffer_Release(&views[i]);
    PyBuffer_Release(&data);

    PyObject *result = NULL, *messages = warning_list(c), *refused = NULL, *components = NULL, *tables = NULL;
    if (messages == NULL)
        goto out;
    if (c->failed)
        refused = Py_BuildValue("(nN)", (Py_ssize_t)c->error_offset,
                                PyUnicode_DecodeLatin1(c->error, (Py_ssize_t)strnlen(c->error, MESSAGE_LENGTH), NULL));
    else if (c->refused != NULL)
        refused = PyUnicode_FromString(c->refused);
    else
        refused = new_none();
    components = PyList_New(0);
    tables = PyTuple_New(NUM_QUANT_TABLES);
    if (refused == NULL || components == NULL || tables == NULL)
        goto out;
    if (refused == Py_None) {
        for (int ci = 0; ci < c->components; ci++) {
            PyObject *blocks = c->outs != 0 ? new_none() : owned_floats(&c->blocks[ci], (Py_ssize_t)c->rows[ci] * c->cols[ci] * 64);
            PyObject *item = blocks == NULL ? NULL : Py_BuildValue("(IIiiiNy#y#)", c->rows[ci], c->cols[ci], c->factors[ci][0], c->factors[ci][1],
                                           c->table_slot[ci], blocks,
                                           (const char *)c->padding_dc[ci],
                                           c->padding_dc[ci] == NULL ? (Py_ssize_t)0 : (Py_ssize_t)c->cols[ci] * (Py_ssize_t)sizeof(JCOEF),
                                           c->progressive ? (const char *)c->coef_bits[ci] : NULL,
                                           c->progressive ? (Py_ssize_t)sizeof c->coef_bits[ci] : (Py_ssize_t)0);
            if (item == NULL || PyList_Append(components, item) < 0) {
                Py_XDECREF(item);
                goto out;
            }
            Py_DECREF(item);
        }
    }
    for (int slot = 0; slot < NUM_QUANT_TABLES; slot++) {
        PyObject *table = c->has_table[slot] && refused == Py_None
                              ? PyBytes_FromStringAndSize((const char *)c->tables[slot], sizeof c->tables[slot])
                              : new_none();
        if (table == NULL)
            goto out;
        PyTuple_SET_ITEM(tables, slot, table);
    }
    PyObject *progress = refused == Py_None && c->progressive ? Py_BuildValue("(iI)", c->scans, c->last_good_row) : new_none();
    if (progress == NULL)
        goto out;
    result = Py_BuildValue("(OOOON)", messages, refused, components, tables, progress);
out:
    Py_XDECREF(messages);
    Py_XDECREF(refused);
    Py_XDECREF(components);
    Py_XDECREF(tables);
    release(c);
    free(c);
    return result;
}

static PyMethodDef methods[] = {
    {"load", py_load, METH_VARARGS, "load(path) -> library: open libjpeg-turbo 2.1 and check its layout"},
    {"read", py_read, METH_VARARGS, "read(library, data, out=None) -> (warnings, refused, components, tables, progress)"},
    {"probe", py_probe, METH_VARARGS,
     "probe(library, version, size_delta) -> libjpeg's message refusing that version and struct size, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_libjpeg", "libjpeg-turbo reads with per-call messages", -1, methods};

PyMODINIT_FUNC PyInit__libjpeg(void) {
    if (PyType_Ready(&floats_type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
#ifdef Py_GIL_DISABLED
    if (m != NULL)
        PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    return m;
}

/*
 * largest_magnitude(buffer, width) -> int: the largest bit pattern, sign bit
 * cleared, of the width-byte elements (2, 4 or 8) of a contiguous buffer. With
 * the sign cleared the order of a float's bit patterns is the order of its
 * magnitudes, NaN above Inf, so one comparison with a bound's pattern tells
 * whether every value is finite and below it: the overflow scan of a dumped
 * file, read through its memory map. The reduction is integer-only and compiled
 * for AVX2 too. Included by _kernel.c after the instruction-set variables.
 */

/* Elements are loaded with memcpy: the bytes of an ATB file follow a text header of any length. */
#define LARGEST_BITS(type, mask)                                  \
    static inline __attribute__((always_inline)) uint64_t         \
    largest_##type(const char *bytes, size_t n)                   \
    {                                                             \
        type m = 0;                                               \
        for (size_t i = 0; i < n; i++) {                          \
            type v;                                               \
            memcpy(&v, bytes + i * sizeof(type), sizeof(type));   \
            v &= (type)(mask);                                    \
            m = v > m ? v : m;                                    \
        }                                                         \
        return (uint64_t)m;                                       \
    }
LARGEST_BITS(uint16_t, 0x7fffu)
LARGEST_BITS(uint32_t, 0x7fffffffu)
LARGEST_BITS(uint64_t, 0x7fffffffffffffffull)

static inline __attribute__((always_inline)) uint64_t largest_bits(const char *bytes, size_t n, int width)
{
    return width == 2 ? largest_uint16_t(bytes, n) : width == 4 ? largest_uint32_t(bytes, n)
                                                                : largest_uint64_t(bytes, n);
}

typedef uint64_t (*largest_fn)(const char *, size_t, int);
static uint64_t largest_baseline(const char *b, size_t n, int w) { return largest_bits(b, n, w); }
#ifdef X86_VARIANTS
__attribute__((target("arch=x86-64-v3"))) static uint64_t largest_v3(const char *b, size_t n, int w)
{
    return largest_bits(b, n, w);
}
static const largest_fn largest_functions[ISA_COUNT] = {largest_baseline, largest_v3, largest_v3};
#else
static const largest_fn largest_functions[ISA_COUNT] = {largest_baseline, NULL, NULL};
#endif

static PyObject *largest_magnitude(PyObject *self, PyObject *args)
{
    Py_buffer view;
    int width;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*i", &view, &width))
        return NULL;
    if ((width != 2 && width != 4 && width != 8) || view.len % width != 0) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "%zd bytes of %d-byte elements: expected 2, 4 or 8 bytes each, "
                            "and whole elements", view.len, width);
    }
    const largest_fn reduce = largest_functions[isa_current];
    uint64_t largest;
    Py_BEGIN_ALLOW_THREADS
    largest = reduce(view.buf, (size_t)view.len / (size_t)width, width);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong((unsigned long long)largest);
}

/*
 * deepsim_plugin.h — the C ABI of deepsim similarity plugins (ABI version 1).
 *
 * A plugin is a shared library exporting one function,
 *
 *     const DsPluginDescriptor *deepsim_plugin_entry(void);
 *
 * that returns a pointer to a static descriptor. The host (deepsim) reads the descriptor's first
 * two fields, the ABI version and the descriptor's size, checks them against the versions it
 * supports, and then only calls the descriptor's functions:
 *
 *     create(options, &instance)     one instance per worker thread; options parsed by the plugin
 *       prepare(instance, level)     once per image pair and pyramid level, per instance
 *         compute(instance, block)   many times: a block of rows, each pixel with its interval
 *       last_error(instance)         after a failed call: the message
 *     destroy(instance)              once, when the host is done with the instance
 *
 * THE DISPARITY CONVENTION: left pixel (x, y) matches right pixel (x - d, y).
 *
 * Threads: the host calls the functions of one instance from one thread at a time (not always the
 * same thread); different instances are used concurrently, and create may run concurrently.
 * Memory: every buffer the host passes is owned by the host and borrowed for the duration of the
 * call only; copy what you need. Strings the plugin returns are owned by the plugin.
 * The host never unloads the library: static data (the descriptor, the name) lives forever.
 * Costs: integers, DS_COST_ONE (1024) = real cost 1.0 = the worst match, 0 = a perfect match.
 *
 * The descriptor only grows at its end (append-only); a plugin built against this header
 * declares DS_ABI_VERSION and sizeof(DsPluginDescriptor).
 *
 * This header mirrors the Rust crate deepsim-plugin-api (plugins/deepsim-plugin-api/src/lib.rs);
 * the test suite checks that both agree on every offset.
 */
#ifndef DEEPSIM_PLUGIN_H
#define DEEPSIM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. */
#define DS_ABI_VERSION 1u

/* The integer cost standing for a real cost of 1.0 (the worst match). Larger values are clamped. */
#define DS_COST_ONE 1024u

/* Status codes returned by create / prepare / compute. */
typedef int32_t DsStatus;
#define DS_OK 0               /* success */
#define DS_ERROR 1            /* failed; last_error says why; the instance stays usable */
#define DS_PANIC 2            /* internal failure; the host destroys the instance and drops it */
#define DS_INVALID_ARGUMENT 3 /* the arguments broke this contract */

/* One image at one pyramid level. Borrowed for one prepare call. */
typedef struct DsImage {
    const float *data;    /* height rows of `stride` values (first `width` are pixels), grey in [0, 1];
                             invalid pixels hold finite values without meaning */
    const uint8_t *valid; /* same layout: 1 = valid pixel, 0 = invalid (nodata, outside the mask) */
    size_t width;         /* pixels per row */
    size_t height;        /* rows */
    size_t stride;        /* values between the starts of two rows (>= width) */
} DsImage;

/* An image pair at one pyramid level (same height; widths may differ). Borrowed for one prepare call. */
typedef struct DsLevel {
    DsImage left;  /* the reference: disparities are computed for its pixels */
    DsImage right;
} DsLevel;

/*
 * A block of consecutive rows of the left image and the costs to write. Borrowed for one compute
 * call.
 *
 * Pixel (x, y0 + r) is pixel p = r * width + x of the block. It searches disparities
 * d_min[p] .. d_min[p] + count[p] - 1. Its costs start at offset(p) = count[0] + ... + count[p-1]:
 * the cost of disparity d_min[p] + k (left (x, y) against right (x - d_min[p] - k, y)) goes to
 * costs[offset(p) + k]. costs_len = count[0] + ... + count[rows * width - 1].
 * Candidates whose right pixel falls outside the right image may be given any value (the host
 * overwrites them, as it does for invalid pixels).
 */
typedef struct DsBlock {
    size_t y0;             /* first row (level pixels) */
    size_t rows;           /* number of rows */
    size_t width;          /* pixels per row = the left image's width */
    const int32_t *d_min;  /* rows * width values, row-major: first disparity of each pixel */
    const uint32_t *count; /* rows * width values: candidates of each pixel (>= 1) */
    uint16_t *costs;       /* costs_len values to write, each in [0, DS_COST_ONE] */
    size_t costs_len;
} DsBlock;

/* Parses `options` (NUL-terminated UTF-8, possibly empty; borrowed for the call), writes a new
 * instance to *instance. On failure returns an error; last_error(NULL) gives the message on the
 * calling thread. */
typedef DsStatus (*DsCreateFn)(const char *options, void **instance);
/* Binds the instance to an image pair at one level, replacing the previous one. */
typedef DsStatus (*DsPrepareFn)(void *instance, const DsLevel *level);
/* Writes the costs of `block` for the pair of the last successful prepare. */
typedef DsStatus (*DsComputeFn)(void *instance, const DsBlock *block);
/* The message of the last failed call on `instance` (NULL instance: of the last failed create on
 * the calling thread); NUL-terminated UTF-8 owned by the plugin, valid until the next call on the
 * instance (thread). May return NULL. */
typedef const char *(*DsLastErrorFn)(const void *instance);
/* Releases an instance; called exactly once per instance. */
typedef void (*DsDestroyFn)(void *instance);

/* The descriptor returned by deepsim_plugin_entry: static, never freed, append-only. */
typedef struct DsPluginDescriptor {
    uint32_t abi_version;     /* DS_ABI_VERSION — always at offset 0 */
    uint32_t size;            /* sizeof(DsPluginDescriptor) — always at offset 4 */
    const char *name;         /* short static name for reports, e.g. "zncc" */
    DsCreateFn create;        /* all five functions are required (non-NULL) */
    DsPrepareFn prepare;
    DsComputeFn compute;
    DsLastErrorFn last_error;
    DsDestroyFn destroy;
} DsPluginDescriptor;

/* The entry symbol's name and type. */
#define DS_ENTRY_SYMBOL "deepsim_plugin_entry"
typedef const DsPluginDescriptor *(*DsEntryFn)(void);

#ifdef __cplusplus
#define DS_EXTERN_C extern "C"
#else
#define DS_EXTERN_C
#endif
#if defined(_WIN32)
#define DS_PLUGIN_EXPORT DS_EXTERN_C __declspec(dllexport)
#else
#define DS_PLUGIN_EXPORT DS_EXTERN_C __attribute__((visibility("default")))
#endif

/* Defines the entry function returning `descriptor` (a static DsPluginDescriptor). */
#define DEEPSIM_PLUGIN_ENTRY(descriptor) \
    DS_PLUGIN_EXPORT const DsPluginDescriptor *deepsim_plugin_entry(void) { return &(descriptor); }

#ifdef __cplusplus
}
#endif

#endif /* DEEPSIM_PLUGIN_H */

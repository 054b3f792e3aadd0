/*
 * A deepsim plugin in C: absolute difference of grey values, cost = min(1, scale * |L - R|).
 * Options: "scale=S" (default 1). The test suite compiles it with
 *
 *     cc -shared -fPIC -O2 -I plugins/deepsim-plugin-api/include absdiff.c -o libabsdiff.so
 *
 * and checks its costs value for value. It also exports deepsim_test_layout(), the offsets of the
 * ABI structs as this C compiler lays them out, which the tests compare with the Rust crate's.
 * Built with -DDS_NO_ENTRY it lacks the entry symbol (the "not a plugin" test).
 */
#include "deepsim_plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct AbsDiff {
    float scale;
    float *left, *right;
    size_t wl, wr, h;
    char error[256];
} AbsDiff;

static _Thread_local char create_error[256];

static DsStatus ad_create(const char *options, void **instance) {
    float scale = 1.0f;
    if (options && options[0]) {
        char *end = NULL;
        if (strncmp(options, "scale=", 6) != 0 || (scale = strtof(options + 6, &end), *end != '\0') || !(scale > 0.0f)) {
            snprintf(create_error, sizeof create_error, "absdiff: options '%s': expected scale=S with S > 0", options);
            return DS_ERROR;
        }
    }
    AbsDiff *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(create_error, sizeof create_error, "absdiff: out of memory");
        return DS_ERROR;
    }
    self->scale = scale;
    *instance = self;
    return DS_OK;
}

static float *copy_image(const DsImage *im) {
    float *out = malloc(im->width * im->height * sizeof *out + 1);
    if (!out) return NULL;
    for (size_t y = 0; y < im->height; y++)
        memcpy(out + y * im->width, im->data + y * im->stride, im->width * sizeof *out);
    return out;
}

static DsStatus ad_prepare(void *instance, const DsLevel *level) {
    AbsDiff *self = instance;
    free(self->left);
    free(self->right);
    self->left = copy_image(&level->left);
    self->right = copy_image(&level->right);
    if (!self->left || !self->right) {
        snprintf(self->error, sizeof self->error, "absdiff: out of memory");
        return DS_ERROR;
    }
    self->wl = level->left.width;
    self->wr = level->right.width;
    self->h = level->left.height;
    return DS_OK;
}

static DsStatus ad_compute(void *instance, const DsBlock *block) {
    AbsDiff *self = instance;
    if (!self->left) {
        snprintf(self->error, sizeof self->error, "absdiff: compute before prepare");
        return DS_ERROR;
    }
    if (block->width != self->wl || block->y0 + block->rows > self->h) {
        snprintf(self->error, sizeof self->error, "absdiff: block does not fit the prepared images");
        return DS_INVALID_ARGUMENT;
    }
    size_t offset = 0;
    for (size_t p = 0; p < block->rows * block->width; p++) {
        size_t x = p % block->width, y = block->y0 + p / block->width;
        for (uint32_t k = 0; k < block->count[p]; k++) {
            long long xr = (long long)x - block->d_min[p] - (long long)k;
            uint16_t cost = DS_COST_ONE;
            if (xr >= 0 && xr < (long long)self->wr) {
                float c = self->scale * fabsf(self->left[y * self->wl + x] - self->right[y * self->wr + (size_t)xr]);
                cost = (uint16_t)lroundf((c < 1.0f ? c : 1.0f) * (float)DS_COST_ONE);
            }
            if (offset >= block->costs_len) {
                snprintf(self->error, sizeof self->error, "absdiff: costs_len too small");
                return DS_INVALID_ARGUMENT;
            }
            block->costs[offset++] = cost;
        }
    }
    return DS_OK;
}

static const char *ad_last_error(const void *instance) {
    if (!instance) return create_error[0] ? create_error : NULL;
    const AbsDiff *self = instance;
    return self->error[0] ? self->error : NULL;
}

static void ad_destroy(void *instance) {
    AbsDiff *self = instance;
    free(self->left);
    free(self->right);
    free(self);
}

static const DsPluginDescriptor descriptor = {
    DS_ABI_VERSION, sizeof(DsPluginDescriptor), "absdiff-c", ad_create, ad_prepare, ad_compute, ad_last_error, ad_destroy,
};

#ifndef DS_NO_ENTRY
DEEPSIM_PLUGIN_ENTRY(descriptor)
#else
/* The descriptor under a name the host does not look for. */
DS_PLUGIN_EXPORT const DsPluginDescriptor *not_the_entry(void) { return &descriptor; }
#endif

/* Sizes and offsets of the ABI structs, in a fixed order (see tests/suite/plugin.rs). */
DS_PLUGIN_EXPORT size_t deepsim_test_layout(size_t *out, size_t capacity) {
    size_t v[] = {
        sizeof(DsImage), offsetof(DsImage, data), offsetof(DsImage, valid), offsetof(DsImage, width),
        offsetof(DsImage, height), offsetof(DsImage, stride),
        sizeof(DsLevel), offsetof(DsLevel, left), offsetof(DsLevel, right),
        sizeof(DsBlock), offsetof(DsBlock, y0), offsetof(DsBlock, rows), offsetof(DsBlock, width),
        offsetof(DsBlock, d_min), offsetof(DsBlock, count), offsetof(DsBlock, costs), offsetof(DsBlock, costs_len),
        sizeof(DsPluginDescriptor), offsetof(DsPluginDescriptor, abi_version), offsetof(DsPluginDescriptor, size),
        offsetof(DsPluginDescriptor, name), offsetof(DsPluginDescriptor, create), offsetof(DsPluginDescriptor, prepare),
        offsetof(DsPluginDescriptor, compute), offsetof(DsPluginDescriptor, last_error), offsetof(DsPluginDescriptor, destroy),
    };
    size_t n = sizeof v / sizeof v[0];
    for (size_t i = 0; i < n && i < capacity; i++) out[i] = v[i];
    return n;
}

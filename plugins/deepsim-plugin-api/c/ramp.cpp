// A deepsim plugin in C++: the cost of candidate k is min(k, DS_COST_ONE) — a ramp that makes
// every pixel choose its first candidate, trivial to check. Shows the C++ side of the contract:
// no exception may cross the ABI, so every function catches everything and reports it.
// Options: "" or "throw" (create throws std::runtime_error, which must come back as DS_PANIC).
//
//     c++ -std=c++17 -shared -fPIC -O2 -I plugins/deepsim-plugin-api/include ramp.cpp -o libramp.so
#include "deepsim_plugin.h"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>

namespace {

struct Ramp {
    std::string error;
};

thread_local std::string create_error;

DsStatus ramp_create(const char *options, void **instance) noexcept {
    try {
        if (std::string(options ? options : "") == "throw") throw std::runtime_error("ramp: create throws, as asked");
        *instance = new Ramp();
        return DS_OK;
    } catch (const std::exception &e) {
        create_error = e.what();
        return DS_PANIC;
    } catch (...) {
        create_error = "ramp: unknown exception";
        return DS_PANIC;
    }
}

DsStatus ramp_prepare(void *, const DsLevel *) noexcept { return DS_OK; }

DsStatus ramp_compute(void *instance, const DsBlock *block) noexcept {
    auto *self = static_cast<Ramp *>(instance);
    try {
        size_t offset = 0;
        for (size_t p = 0; p < block->rows * block->width; p++)
            for (uint32_t k = 0; k < block->count[p]; k++)
                block->costs[offset++] = static_cast<uint16_t>(std::min<uint32_t>(k, DS_COST_ONE));
        if (offset != block->costs_len) throw std::logic_error("ramp: costs_len differs from the sum of counts");
        return DS_OK;
    } catch (const std::exception &e) {
        self->error = e.what();
        return DS_PANIC;
    }
}

const char *ramp_last_error(const void *instance) noexcept {
    const std::string &e = instance ? static_cast<const Ramp *>(instance)->error : create_error;
    return e.empty() ? nullptr : e.c_str();
}

void ramp_destroy(void *instance) noexcept { delete static_cast<Ramp *>(instance); }

const DsPluginDescriptor descriptor = {
    DS_ABI_VERSION, sizeof(DsPluginDescriptor), "ramp-cxx", ramp_create, ramp_prepare, ramp_compute, ramp_last_error, ramp_destroy,
};

}  // namespace

DEEPSIM_PLUGIN_ENTRY(descriptor)

// The C API (include/harvit/harvit.h) over deploy::StreamRecognizer.
//
// The boundary rule: no exception and no abort crosses into the caller. Every entry point runs
// its body inside guard(), which turns std::bad_alloc into HARVIT_ERROR_MEMORY, any other
// exception into the status its caller chose (with the exception's message), and anything that is
// not a std::exception into HARVIT_ERROR_INTERNAL. Messages are kept in fixed buffers (per handle
// and per thread) so that reporting an error never allocates, even after an allocation failed.
#include "harvit/harvit.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <string>

#include "deploy/stream.h"

using harvit::deploy::Decision;
using harvit::deploy::Smoothing;
using harvit::deploy::StreamOptions;
using harvit::deploy::StreamRecognizer;

struct harvit_stream {
  std::unique_ptr<StreamRecognizer> sr;
  harvit_callback cb = nullptr;
  void* user = nullptr;
  char msg[1024] = {0};
};

namespace {

thread_local char t_msg[1024] = {0};

// Records the message of a failure for this thread and (when given) the handle; returns status.
int set_error(const harvit_stream* h, int status, const char* what) {
  std::snprintf(t_msg, sizeof t_msg, "%s", what ? what : "");
  if (h) std::snprintf(const_cast<harvit_stream*>(h)->msg, sizeof h->msg, "%s", t_msg);
  return status;
}

template <class F>
int guard(const harvit_stream* h, int on_error, F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return set_error(h, HARVIT_ERROR_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return set_error(h, on_error, e.what());
  } catch (...) {
    return set_error(h, HARVIT_ERROR_INTERNAL, "unknown exception");
  }
}

int null_arg(const harvit_stream* h, const char* fn, const char* what) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s: %s is NULL", fn, what);
  return set_error(h, HARVIT_ERROR_ARGUMENT, buf);
}

harvit_decision to_c(const Decision& d) {
  harvit_decision c;
  c.end = d.end;
  c.time_ns = d.time_ns;
  c.label = d.label;
  c.confidence = d.confidence;
  c.hop_label = d.hop_label;
  c.hop_confidence = d.hop_confidence;
  c.changed = d.changed ? 1 : 0;
  c.probs = d.probs;
  return c;
}

void trampoline(const Decision& d, void* user) {
  auto* h = static_cast<harvit_stream*>(user);
  const harvit_decision c = to_c(d);
  h->cb(&c, h->user);
}

// The C options as StreamOptions. The C-only checks (a NULL precision, an unknown
// method, NaN) fail here with HARVIT_ERROR_OPTIONS; the ranges are deploy::check_options'.
int convert_options(const harvit_options& o, StreamOptions& s) {
  char buf[256];
  if (!o.precision) return set_error(nullptr, HARVIT_ERROR_OPTIONS, "options.precision is NULL (\"fp32\" or \"int8\")");
  if (o.method != HARVIT_SMOOTH_MEAN && o.method != HARVIT_SMOOTH_VOTE) {
    std::snprintf(buf, sizeof buf, "options.method %d is not HARVIT_SMOOTH_MEAN (0) or HARVIT_SMOOTH_VOTE (1)",
                  (int)o.method);
    return set_error(nullptr, HARVIT_ERROR_OPTIONS, buf);
  }
  if (std::isnan(o.min_confidence)) return set_error(nullptr, HARVIT_ERROR_OPTIONS, "options.min_confidence is NaN");
  if (std::isnan(o.reject)) return set_error(nullptr, HARVIT_ERROR_OPTIONS, "options.reject is NaN");
  s.precision = o.precision;
  s.hop = o.hop;
  s.smooth = o.smooth;
  s.method = o.method == HARVIT_SMOOTH_VOTE ? Smoothing::Vote : Smoothing::Mean;
  s.votes = o.votes;
  s.min_confidence = o.min_confidence;
  s.hysteresis = o.hysteresis;
  s.max_gap_ns = o.max_gap_ns;
  s.queue = o.queue;
  s.threads = o.threads;
  s.reject = o.reject;
  return HARVIT_OK;
}

}  // namespace

extern "C" {

const char* harvit_version(void) { return HARVIT_VERSION_STRING; }

const char* harvit_status_string(int status) {
  switch (status) {
    case HARVIT_OK: return "ok";
    case HARVIT_ERROR_ARGUMENT: return "invalid argument";
    case HARVIT_ERROR_OPTIONS: return "invalid option";
    case HARVIT_ERROR_FILE: return "cannot open the checkpoint";
    case HARVIT_ERROR_MODEL: return "cannot use the checkpoint";
    case HARVIT_ERROR_MEMORY: return "out of memory";
    case HARVIT_ERROR_INTERNAL: return "internal error";
    default: return "unknown status code";
  }
}

const char* harvit_error_message(const harvit_stream* h) { return h ? h->msg : t_msg; }

int harvit_options_init(harvit_options* o) {
  if (!o) return null_arg(nullptr, "harvit_options_init", "options");
  const StreamOptions d;
  o->precision = "fp32";
  o->hop = d.hop;
  o->smooth = d.smooth;
  o->method = d.method == Smoothing::Vote ? HARVIT_SMOOTH_VOTE : HARVIT_SMOOTH_MEAN;
  o->votes = d.votes;
  o->min_confidence = d.min_confidence;
  o->hysteresis = d.hysteresis;
  o->max_gap_ns = d.max_gap_ns;
  o->queue = d.queue;
  o->threads = d.threads;
  o->reject = d.reject;
  return HARVIT_OK;
}

int harvit_open(const char* checkpoint, const harvit_options* options, harvit_stream** out) {
  if (!out) return null_arg(nullptr, "harvit_open", "out");
  *out = nullptr;
  if (!checkpoint) return null_arg(nullptr, "harvit_open", "checkpoint");
  return guard(nullptr, HARVIT_ERROR_MODEL, [&]() -> int {
    harvit_options defaults;
    harvit_options_init(&defaults);
    StreamOptions so;
    if (int st = convert_options(options ? *options : defaults, so)) return st;
    try {
      harvit::deploy::check_options(so);
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      return set_error(nullptr, HARVIT_ERROR_OPTIONS, e.what());
    }
    {
      std::ifstream f(checkpoint, std::ios::binary);
      if (!f) {
        const std::string m = std::string(checkpoint) + ": cannot open (" + std::strerror(errno) + ")";
        return set_error(nullptr, HARVIT_ERROR_FILE, m.c_str());
      }
    }
    auto h = std::make_unique<harvit_stream>();
    h->sr = std::make_unique<StreamRecognizer>(checkpoint, so);
    *out = h.release();
    return HARVIT_OK;
  });
}

int harvit_close(harvit_stream* h) {
  delete h;  // the destructors do not throw
  return HARVIT_OK;
}

int harvit_push(harvit_stream* h, const float* samples, int64_t n, const int64_t* time_ns) {
  if (!h) return null_arg(nullptr, "harvit_push", "handle");
  if (n < 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "harvit_push: n = %lld is negative", (long long)n);
    return set_error(h, HARVIT_ERROR_ARGUMENT, buf);
  }
  if (n == 0) return HARVIT_OK;
  if (!samples) return null_arg(h, "harvit_push", "samples");
  return guard(h, HARVIT_ERROR_INTERNAL, [&]() -> int {
    h->sr->push(samples, n, time_ns);
    return HARVIT_OK;
  });
}

int harvit_next(harvit_stream* h, harvit_decision* decision, int* got) {
  if (!h) return null_arg(nullptr, "harvit_next", "handle");
  if (!decision) return null_arg(h, "harvit_next", "decision");
  if (!got) return null_arg(h, "harvit_next", "got");
  return guard(h, HARVIT_ERROR_INTERNAL, [&]() -> int {
    Decision d;
    *got = h->sr->next(d) ? 1 : 0;
    if (*got) *decision = to_c(d);
    return HARVIT_OK;
  });
}

int harvit_set_callback(harvit_stream* h, harvit_callback cb, void* user) {
  if (!h) return null_arg(nullptr, "harvit_set_callback", "handle");
  h->cb = cb;
  h->user = user;
  h->sr->set_callback(cb ? trampoline : nullptr, cb ? h : nullptr);
  return HARVIT_OK;
}

int harvit_reset(harvit_stream* h) {
  if (!h) return null_arg(nullptr, "harvit_reset", "handle");
  return guard(h, HARVIT_ERROR_INTERNAL, [&]() -> int {
    h->sr->reset();
    return HARVIT_OK;
  });
}

#define HARVIT_QUERY(fn, expr)                                  \
  int fn(const harvit_stream* h, int64_t* n) {                  \
    if (!h) return null_arg(nullptr, #fn, "handle");            \
    if (!n) return null_arg(h, #fn, "the result pointer");      \
    *n = static_cast<int64_t>(h->sr->expr);                     \
    return HARVIT_OK;                                           \
  }
HARVIT_QUERY(harvit_classes, classes())
HARVIT_QUERY(harvit_window, window())
HARVIT_QUERY(harvit_axes, axes())
HARVIT_QUERY(harvit_hop, hop())
HARVIT_QUERY(harvit_samples, samples())
HARVIT_QUERY(harvit_decisions, decisions())
HARVIT_QUERY(harvit_dropped, dropped())
HARVIT_QUERY(harvit_gaps, gaps())
#undef HARVIT_QUERY

static int name_at(const harvit_stream* h, const char* fn, const std::vector<std::string>& names, int64_t i,
                   const char** name) {
  if (!name) return null_arg(h, fn, "name");
  if (i < 0 || i >= static_cast<int64_t>(names.size())) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s: index %lld is outside 0..%lld", fn, (long long)i,
                  (long long)names.size() - 1);
    return set_error(h, HARVIT_ERROR_ARGUMENT, buf);
  }
  *name = names[i].c_str();
  return HARVIT_OK;
}

int harvit_class_name(const harvit_stream* h, int64_t i, const char** name) {
  if (!h) return null_arg(nullptr, "harvit_class_name", "handle");
  return name_at(h, "harvit_class_name", h->sr->class_names(), i, name);
}

int harvit_axis_name(const harvit_stream* h, int64_t i, const char** name) {
  if (!h) return null_arg(nullptr, "harvit_axis_name", "handle");
  return name_at(h, "harvit_axis_name", h->sr->axis_names(), i, name);
}

}  // extern "C"

/* harvit: streaming human activity recognition, C API (C99).
 *
 * A stream handle loads a trained checkpoint (.safetensors from `harvit train`) and labels a live
 * stream of raw sensor samples: push samples in any amount, and every `hop` samples the last
 * window is classified, its class probabilities smoothed over the last `smooth` hops, and the held
 * label changes only after a new class has won `hysteresis` hops in a row (the C++ recogniser
 * behind it is src/deploy/stream.h, the same as `harvit stream`).
 *
 *   harvit_options opt;
 *   harvit_stream* h;
 *   harvit_options_init(&opt);
 *   opt.smooth = 3;
 *   if (harvit_open("best.safetensors", &opt, &h) != HARVIT_OK) {
 *     fprintf(stderr, "%s\n", harvit_error_message(NULL));   // this thread's last error
 *     return 1;
 *   }
 *   harvit_push(h, samples, n, NULL);                          // n rows of harvit_axes() floats
 *   harvit_decision d;
 *   int got;
 *   while (harvit_next(h, &d, &got) == HARVIT_OK && got) printf("%lld %d\n", (long long)d.end, d.label);
 *   harvit_close(h);
 *
 * Errors: every function returns a status (HARVIT_OK = 0) and never lets a C++ exception or an
 * abort cross into the caller (out of memory included). The message of the last failure is kept
 * per handle (harvit_error_message(h)) and per thread (harvit_error_message(NULL): also where
 * harvit_open failed and there is no handle). NULL handles and pointers give
 * HARVIT_ERROR_ARGUMENT.
 *
 * Threads and memory: a handle is used by one thread at a time; different handles are
 * independent. With threads = 1 (the default) all work runs on the calling thread. After
 * harvit_open, harvit_push / harvit_next / harvit_reset allocate no memory.
 *
 * Link: cc app.c $(pkg-config --cflags --libs harvit)     (static: pkg-config --static)
 * CMake: find_package(harvit) ... target_link_libraries(app PRIVATE harvit::harvit)
 */
#ifndef HARVIT_HARVIT_H
#define HARVIT_HARVIT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define HARVIT_API __attribute__((visibility("default")))
#else
#define HARVIT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define HARVIT_VERSION_MAJOR 0
#define HARVIT_VERSION_MINOR 1
#define HARVIT_VERSION_PATCH 0
#define HARVIT_VERSION_STRING "0.1.0"

typedef enum harvit_status {
  HARVIT_OK = 0,
  HARVIT_ERROR_ARGUMENT = 1, /* a NULL handle or pointer, a negative count, an index out of range */
  HARVIT_ERROR_OPTIONS = 2,  /* an option out of range (hop, smooth, votes, precision ...) */
  HARVIT_ERROR_FILE = 3,     /* the checkpoint cannot be opened */
  HARVIT_ERROR_MODEL = 4,    /* the checkpoint cannot be used (malformed, unsupported) */
  HARVIT_ERROR_MEMORY = 5,   /* out of memory */
  HARVIT_ERROR_INTERNAL = 6  /* anything else (the message says what) */
} harvit_status;

typedef enum harvit_smoothing {
  HARVIT_SMOOTH_MEAN = 0, /* argmax of the probabilities averaged over the last `smooth` hops */
  HARVIT_SMOOTH_VOTE = 1  /* a class with `votes` of the last `smooth` hops' own argmaxes */
} harvit_smoothing;

/* Mirrors StreamOptions (src/deploy/stream.h). Fill with harvit_options_init, then change fields. */
typedef struct harvit_options {
  const char* precision; /* "fp32" (default) or "int8"; copied by harvit_open */
  int64_t hop;           /* samples between classifications; 0 = half a window */
  int32_t smooth;        /* hops smoothed over; 1 = none */
  int32_t method;        /* harvit_smoothing */
  int32_t votes;         /* vote: agreeing hops needed of the last `smooth`; 0 = a majority */
  float min_confidence;  /* in [0, 1]; 0 = any */
  int32_t hysteresis;    /* consecutive hops a new class must win to become the label; >= 1 */
  int64_t max_gap_ns;    /* with timestamps: a larger gap (or a step back) restarts; 0 = never */
  int64_t queue;         /* decisions kept until read; when full the oldest is dropped */
  int32_t threads;       /* 1 = the calling thread only; > 1 = an OpenMP pool */
  float reject;          /* label -1 ("unknown") when the smoothed top probability is below this;
                            -1 = the checkpoint's calibrated threshold (0 if uncalibrated); 0 = never */
} harvit_options;

/* One classification. probs points at classes() smoothed probabilities owned by the handle,
 * valid until the next harvit_push, harvit_next or harvit_reset on it (in a callback: until it
 * returns). */
typedef struct harvit_decision {
  int64_t end;            /* samples pushed when it was made: the window is [end - window, end) */
  int64_t time_ns;        /* timestamp of the window's last sample; -1 without timestamps */
  int32_t label;          /* the smoothed, held label (class index); -1 = unknown (below the
                             rejection threshold, or no confident label yet) */
  float confidence;       /* smoothed probability of label */
  int32_t hop_label;      /* this hop's own argmax */
  float hop_confidence;   /* its probability */
  int32_t changed;        /* 1 when label differs from the previous decision's (1 for the first) */
  const float* probs;
} harvit_decision;

typedef struct harvit_stream harvit_stream; /* opaque */

typedef void (*harvit_callback)(const harvit_decision* decision, void* user);

/* "0.1.0" */
HARVIT_API const char* harvit_version(void);
/* A constant description of a status code ("ok", "invalid argument", ...). */
HARVIT_API const char* harvit_status_string(int status);
/* The message of the last failed call on h; h = NULL: of the calling thread's last failed call
 * (any handle, or harvit_open). "" when there was none. Valid until the next call that fails. */
HARVIT_API const char* harvit_error_message(const harvit_stream* h);

/* The defaults (fp32, hop 0, smooth 1, mean, votes 0, min_confidence 0, hysteresis 1, no gap
 * restarts, queue 256, 1 thread). */
HARVIT_API int harvit_options_init(harvit_options* options);
/* Loads the checkpoint and warms up; options NULL = the defaults. *out is NULL on failure. */
HARVIT_API int harvit_open(const char* checkpoint, const harvit_options* options, harvit_stream** out);
/* Frees the handle; NULL is allowed (does nothing). */
HARVIT_API int harvit_close(harvit_stream* h);

/* Pushes n samples: n rows of harvit_axes() floats, row-major, raw sensor units, axes in the
 * model's order (harvit_axis_name); time_ns: NULL or n timestamps in nanoseconds. */
HARVIT_API int harvit_push(harvit_stream* h, const float* samples, int64_t n, const int64_t* time_ns);
/* The oldest unread decision into *decision, *got = 1; *got = 0 when there is none. */
HARVIT_API int harvit_next(harvit_stream* h, harvit_decision* decision, int* got);
/* Each decision goes to cb during harvit_push instead of the queue; cb NULL = queue again. The
 * callback must not call back into this handle. */
HARVIT_API int harvit_set_callback(harvit_stream* h, harvit_callback cb, void* user);
/* Forgets the buffered samples, the smoothing history, the label and the unread decisions (a new
 * recording); the sample count goes on. */
HARVIT_API int harvit_reset(harvit_stream* h);

/* Queries. Names are owned by the handle and valid until harvit_close. */
HARVIT_API int harvit_classes(const harvit_stream* h, int64_t* n);
HARVIT_API int harvit_class_name(const harvit_stream* h, int64_t i, const char** name);
HARVIT_API int harvit_window(const harvit_stream* h, int64_t* samples);
HARVIT_API int harvit_axes(const harvit_stream* h, int64_t* n);
HARVIT_API int harvit_axis_name(const harvit_stream* h, int64_t i, const char** name);
HARVIT_API int harvit_hop(const harvit_stream* h, int64_t* samples);
HARVIT_API int harvit_samples(const harvit_stream* h, int64_t* n);   /* pushed so far */
HARVIT_API int harvit_decisions(const harvit_stream* h, int64_t* n); /* made so far */
HARVIT_API int harvit_dropped(const harvit_stream* h, int64_t* n);   /* lost to a full queue */
HARVIT_API int harvit_gaps(const harvit_stream* h, int64_t* n);      /* restarts after a time gap */

#ifdef __cplusplus
}
#endif

#endif /* HARVIT_HARVIT_H */

// Augmentations of training windows (T, M), in place, drawn from a seeded RNG: circular time
// shift, 3-D rotation of each xyz triple, per-axis scaling, Gaussian jitter (in that order).
#pragma once
#include <cstdint>

#include "core/rng.h"

namespace harvit::data {

struct AugmentOptions {
  double scale = 0;   // multiply each (window, axis) by U(1 - s, 1 + s)
  double jitter = 0;  // add N(0, sigma^2) noise to every value
  double rotate = 0;  // rotate each xyz triple (or all alike) by up to this many degrees about a random axis
  int64_t shift = 0;  // roll the window in time by k in [-shift, shift] samples
  // false: each xyz triple turns on its own; true: one rotation per window turns every triple
  // alike (the triples of one device - UCI-HAR's body acc, gyroscope and total acc - turn together
  // when the phone turns; with sensors on several body parts, all of them turn alike). The windows
  // are normalised per axis before augmentation, so either acts on normalised values, not on the
  // physical vectors.
  bool rotate_together = false;
  bool any() const { return scale > 0 || jitter > 0 || rotate > 0 || shift > 0; }
};

// B windows of T x M floats at x. Rotation covers the axes in whole groups of 3 (callers check
// that M is a multiple of 3 where that matters); the draws per window are: shift, per group (or
// once, rotate_together) an axis (3 normals) and an angle, per axis a factor, per value a normal.
void augment_windows(float* x, int64_t B, int64_t T, int64_t M, const AugmentOptions& opt, Rng& rng);

// The trainer's stream for one batch, a function of (seed, epoch, step) only, so that a resumed
// run draws the same augmentations.
Rng augment_rng(uint64_t seed, int64_t epoch, int64_t step);

}  // namespace harvit::data

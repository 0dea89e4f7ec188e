#include "core/comm.h"

#include <cstdio>
#include <cstdlib>

namespace harvit {

void Comm::broadcast(std::string& s, int root) {
  int64_t n = static_cast<int64_t>(s.size());
  broadcast(&n, sizeof n, root);
  s.resize(static_cast<size_t>(n));
  if (n) broadcast(s.data(), n, root);
}

void Comm::abort(const std::string& why, int code) {
  std::fprintf(stderr, "harvit: error: %s\n", why.c_str());
  std::fflush(stderr);
  std::exit(code);
}

Comm& Comm::local() {
  static Comm c;
  return c;
}

}  // namespace harvit

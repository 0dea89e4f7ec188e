#include "core/threading.h"

#include <omp.h>

namespace harvit {

namespace {
thread_local bool t_serial = false;
}

bool serial_mode() { return t_serial; }

SerialScope::SerialScope() : was_serial_(t_serial), threads_(omp_get_max_threads()) {
  t_serial = true;
  omp_set_num_threads(1);  // this thread's ICV only: oneDNN called from here runs on it alone
}

SerialScope::~SerialScope() {
  omp_set_num_threads(threads_);
  t_serial = was_serial_;
}

}  // namespace harvit

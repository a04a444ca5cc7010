#include "worker/handler.h"

#include <condition_variable>
#include <mutex>

namespace flame {

bool JobContext::sleepFor(Duration d) const {
  // A private cv: nothing notifies it but the stop token, whose callback wakes the wait.
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  // wait_for() adds `d` to steady_clock::now(); beyond a day it is "forever" in practice and
  // the addition could overflow, so wait for the stop request alone.
  if (d >= Duration(24L * 3600 * 1000)) {
    cv.wait(lock, stop_, [] { return false; });
  } else if (d.count() > 0) {
    cv.wait_for(lock, stop_, d, [] { return false; });
  }
  return !stop_.stop_requested();
}

}  // namespace flame

// Functions every flame-worker serves, so a pool of generic workers is useful (and testable)
// without application code:
//   echo   returns its payload
//   sleep  payload = decimal milliseconds; sleeps cooperatively, returns "slept N"
//   fail   fails with the payload as the error message
// and, for tests of the failure paths only (never enable in production):
//   crash  std::abort() at once
//   hang   sleeps forever, ignoring cancellation (makes its runner retire)
#pragma once

#include "worker/runner.h"

namespace flame {

void registerBuiltinFunctions(Runner& runner, bool enableTestFunctions);

}  // namespace flame

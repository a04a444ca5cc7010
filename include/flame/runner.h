// <flame/runner.h>: what an application includes to serve functions as a flame runner —
// flame::Runner, RunnerOptions (fromEnvironment(): FLAME_BROKER, FLAME_POOL, ...), JobContext,
// handler results, the typed Cap'n Proto handlers (flame::typed<In, Out>), Runner::serve for a
// flame::Function<In, Out>, and flame::serveIfBooted (an app that is its own runner when booted).
//
// The headers below are installed with the tree's layout under include/flame/; the installed
// package puts include/flame/ on the include path too, so their own "common/..." includes
// resolve (find_package(flame) and pkg-config flame-runner both do).
#pragma once

#include "worker/runner.h"
#include "worker/serve.h"
#include "worker/typed.h"

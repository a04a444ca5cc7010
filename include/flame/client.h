// <flame/client.h>: what an application includes to send work to a flame broker —
// flame::Client (call, callAsync, cast, place, stop, status, setPool, subscribe to events),
// Outcome/Failure, child handles, subscriptions, typed calls of a flame::Function<In, Out> and the
// Cap'n Proto helpers (callTyped, toBytes, fromBytes).
//
// The headers below are installed with the tree's layout under include/flame/; the installed
// package puts include/flame/ on the include path too, so their own "common/..." includes
// resolve (find_package(flame) and pkg-config flame-client both do).
#pragma once

#include "client/client.h"
#include "client/typed.h"

// The only file with CATCH_CONFIG_MAIN: it is slow to compile, so it is built once.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

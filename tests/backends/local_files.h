// Helpers for the backend tests that start real local processes (process, exec): a private
// temporary directory, whole-file reads, and a bounded wait for what those processes do.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

namespace flame::test {

// /tmp/<prefix>-XXXXXX, removed with its files by the destructor.
struct TempDir {
  std::filesystem::path dir;
  explicit TempDir(const std::string& prefix) {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    dir = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

inline std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls `condition` (the state of another process: a file it writes, its exit) until it holds
// or `limit` passes. The limit only bounds a failure; nothing waits when the condition holds.
inline bool waitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling another process's state
  }
  return true;
}

}  // namespace flame::test

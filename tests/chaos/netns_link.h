// NetnsLink: a network namespace joined to the root namespace by a veth pair, for runners
// whose link the chaos driver cuts. Addresses are private /30s the test chooses
// (10.251.<net>.<4k+1> root side, <4k+2> namespace side); they exist only on these veth ends.
// The namespace side has a default route through the root side, so a runner inside reaches
// any root-side veth address of the test (the broker binds one of them).
//
// RAII: the destructor deletes the namespace (which deletes the veth pair). Names carry the
// driver's pid, so sweepStale() can remove what a killed run left behind.
#pragma once

#include <memory>
#include <string>

namespace flame::chaos {

// Runs a command line through /bin/sh; returns true on exit status 0. Output goes to `log`
// (appended) when non-empty, else is discarded.
bool runCommand(const std::string& command, const std::string& log = "");

class NetnsLink {
 public:
  // Why namespaces cannot be used here ("" if they can): not root, no `ip`, or a probe failed.
  static std::string unavailableReason();
  // Deletes namespaces "fchaos-<pid>-*" whose driver pid no longer runs.
  static void sweepStale();

  // Creates namespace "fchaos-<driverpid>-<index>" and its veth pair. Throws std::runtime_error
  // (with the failing command) when the kernel refuses; partial state is removed first.
  NetnsLink(int index, int net, const std::string& log);
  ~NetnsLink();
  NetnsLink(const NetnsLink&) = delete;
  NetnsLink& operator=(const NetnsLink&) = delete;

  const std::string& netns() const { return netns_; }
  const std::string& rootAddress() const { return rootAddress_; }  // e.g. 10.251.7.1
  bool isCut() const { return cut_; }
  // Takes the namespace side of the veth down (packets in both directions are lost; the
  // namespace loses its routes). Returns false if the command failed.
  bool cut();
  // Brings it up again and restores the default route.
  bool restore();

 private:
  std::string netns_, rootIf_, nsIf_, rootAddress_, nsAddress_, log_;
  bool cut_ = false;
};

}  // namespace flame::chaos

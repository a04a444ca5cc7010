// Fuzzes the decoders of Kubernetes Pod and PodList answers (backends/kubernetes_api.h) and
// dnsLabel(), which turns ids into pod names and label values. Contract under test: on any bytes
// they return a value and never throw; a decoded pod has a name; a list's pods and skipped items
// account for every item; dnsLabel() of any text is a DNS-1123 label (1 to 63 characters of
// [a-z0-9-], alphanumeric at both ends). Any exception, crash, sanitizer report or hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "backends/api_json.h"
#include "backends/kubernetes_api.h"

namespace {
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "kubernetes_answer_fuzz: %s\n", what);
  std::abort();
}

bool isAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

void checkLabel(const std::string& label) {
  if (label.empty() || label.size() > 63) fail("dnsLabel: length out of 1..63");
  if (!isAlnum(label.front()) || !isAlnum(label.back())) fail("dnsLabel: bad first/last char");
  for (char c : label)
    if (!isAlnum(c) && c != '-') fail("dnsLabel: character outside [a-z0-9-]");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  flame::k8s::PodAnswer pod = flame::k8s::parsePod(body);
  if (pod.status.ok) {
    if (pod.pod.name.empty()) fail("decoded a pod without a name");
    (void)flame::k8s::endedDescription(pod.pod);
    (void)flame::k8s::belongsTo(pod.pod, "broker-a", "thumbs-1");
    (void)pod.pod.tag(flame::k8s::kKeyRunnerId);
  } else if (pod.status.message.empty()) {
    fail("a refused pod without a reason");
  }

  flame::k8s::PodListAnswer list = flame::k8s::parsePodList(body);
  if (list.status.ok) {
    auto json = flame::api::parseJson(body);
    if (!json || !json->is_object() || !json->contains("items")) fail("accepted a non-PodList");
    const auto& items = (*json)["items"];
    size_t count = items.is_array() ? items.size() : 0;
    if (list.pods.size() + list.skipped != count)
      fail("items neither decoded nor counted as skipped");
    for (const auto& p : list.pods) {
      if (p.name.empty()) fail("decoded a listed pod without a name");
      (void)flame::k8s::endedDescription(p);
    }
  } else if (list.status.message.empty()) {
    fail("a refused list without a reason");
  }

  checkLabel(flame::dnsLabel(body));
  return 0;
}

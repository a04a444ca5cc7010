#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/curve_keys.h"

using namespace flame;

namespace {
// A scratch folder of its own, removed at the end.
struct TempDir {
  TempDir() {
    char path[] = "/tmp/flame-keys-XXXXXX";
    REQUIRE(mkdtemp(path) != nullptr);
    dir = path;
  }
  ~TempDir() { std::filesystem::remove_all(dir); }
  std::string file(const std::string& name) const { return dir + "/" + name; }
  void write(const std::string& name, const std::string& text, mode_t mode = 0644) const {
    std::ofstream(file(name)) << text;
    chmod(file(name).c_str(), mode);
  }
  std::string dir;
};

mode_t modeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const KeyFileError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("a generated key pair is written as NAME.key (0600) and NAME.pub and reads back", "[keys]") {
  TempDir tmp;
  CurveKeyPair keys = generateCurveKeyPair();
  CHECK(isZ85Key(keys.publicKey));
  CHECK(isZ85Key(keys.secretKey));
  CHECK(publicKeyOf(keys.secretKey) == keys.publicKey);
  writeKeyPair(tmp.file("broker"), keys);
  CHECK(modeOf(tmp.file("broker.key")) == 0600);
  CHECK(readSecretKeyFile(tmp.file("broker.key")) == keys.secretKey);
  CHECK(readPublicKey(tmp.file("broker.pub")) == keys.publicKey);
  CHECK(readPublicKey(keys.publicKey) == keys.publicKey);  // given directly
  // A 40-character path of Z85 characters is a file first (CI's temp dirs made such paths).
  std::string path = tmp.file("");  // "/tmp/flame-keys-XXXXXX/": 23 characters
  REQUIRE(path.size() + 5 <= kZ85KeyLength);
  path += std::string(kZ85KeyLength - path.size() - 4, 'b') + ".pub";
  REQUIRE(path.size() == kZ85KeyLength);
  std::filesystem::copy_file(tmp.file("broker.pub"), path);
  REQUIRE(isZ85Key(path));
  CHECK(readPublicKey(path) == keys.publicKey);
  // Never over an existing key, and nothing half written.
  CHECK_THROWS_AS(writeKeyPair(tmp.file("broker"), generateCurveKeyPair()), KeyFileError);
  CHECK(readSecretKeyFile(tmp.file("broker.key")) == keys.secretKey);
}

TEST_CASE("bad key files are refused with the file and the fault named", "[keys]") {
  TempDir tmp;
  CurveKeyPair keys = generateCurveKeyPair();
  tmp.write("open.key", keys.secretKey + "\n", 0644);
  auto why = errorOf([&] { readSecretKeyFile(tmp.file("open.key")); });
  CHECK_THAT(why, Catch::Contains(tmp.file("open.key")) && Catch::Contains("owner only"));
  CHECK_THAT(errorOf([&] { readSecretKeyFile(tmp.file("missing.key")); }),
             Catch::Contains(tmp.file("missing.key")) && Catch::Contains("cannot read"));
  tmp.write("short.key", "abc\n", 0600);
  CHECK_THAT(errorOf([&] { readSecretKeyFile(tmp.file("short.key")); }),
             Catch::Contains("short.key") && Catch::Contains("40 Z85 characters"));
  tmp.write("empty.key", "# nothing here\n\n", 0600);
  CHECK_THAT(errorOf([&] { readSecretKeyFile(tmp.file("empty.key")); }), Catch::Contains("empty"));
  CHECK_THAT(errorOf([&] { readPublicKey("not-a-key-nor-a-file"); }), Catch::Contains("neither"));
  CHECK_FALSE(isZ85Key(std::string(40, '"')));  // 40 characters, but not Z85
}

TEST_CASE("allow-lists read keys, names and comments from a file or a folder of .pub files",
          "[keys]") {
  TempDir tmp;
  auto a = generateCurveKeyPair(), b = generateCurveKeyPair(), c = generateCurveKeyPair();
  tmp.write("clients", "# our clients\n" + a.publicKey + " alice laptop\n\n  " + b.publicKey + "\n");
  auto keys = readAllowList(tmp.file("clients"));
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].key == a.publicKey);
  CHECK(keys[0].name == "alice laptop");
  CHECK(keys[1].key == b.publicKey);
  CHECK(keys[1].name.empty());

  std::filesystem::create_directory(tmp.file("runners"));
  tmp.write("runners/gpu-1.pub", c.publicKey + "\n");
  tmp.write("runners/notes.txt", "not a key\n");  // only *.pub files count
  auto folder = readAllowList(tmp.file("runners"));
  REQUIRE(folder.size() == 1);
  CHECK(folder[0].key == c.publicKey);
  CHECK(folder[0].name == "gpu-1");

  tmp.write("bad", a.publicKey + "\nnot-a-key bob\n");
  CHECK_THAT(errorOf([&] { readAllowList(tmp.file("bad")); }),
             Catch::Contains(tmp.file("bad") + ":2") && Catch::Contains("not a Z85 public key"));
}

#include "broker/boot_token.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

using namespace flame;

TEST_CASE("boot tokens depend on every input and verify only themselves", "[broker][token]") {
  auto t = deriveBootToken("secret-1", "broker-1", "p", "p-abc");
  CHECK(t.size() == 64);
  CHECK(t == deriveBootToken("secret-1", "broker-1", "p", "p-abc"));
  CHECK(t != deriveBootToken("secret-2", "broker-1", "p", "p-abc"));
  CHECK(t != deriveBootToken("secret-1", "broker-2", "p", "p-abc"));
  CHECK(t != deriveBootToken("secret-1", "broker-1", "q", "p-abc"));
  CHECK(t != deriveBootToken("secret-1", "broker-1", "p", "p-abd"));
  // Field boundaries matter, whatever bytes the fields hold.
  CHECK(deriveBootToken("s", "b", "p", "q\nx") != deriveBootToken("s", "b", "p\nq", "x"));
  CHECK(sameSecret(t, t));
  CHECK_FALSE(sameSecret(t, t.substr(1)));
  CHECK_FALSE(sameSecret("abc", "abd"));
}

TEST_CASE("the token secret file is created 0600 once, then read back, unsafe files are refused",
          "[broker][token]") {
  char dir[] = "/tmp/flame-secret-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string path = std::string(dir) + "/secret";
  std::string first = loadOrCreateSecret(path);
  CHECK(first.size() == 64);
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(loadOrCreateSecret(path) == first);  // a restarted broker gets the same secret

  chmod(path.c_str(), 0644);
  CHECK_THROWS_WITH(loadOrCreateSecret(path), Catch::Contains("group or others"));
  std::string shortPath = std::string(dir) + "/short";
  { std::ofstream(shortPath) << "tiny\n"; }
  chmod(shortPath.c_str(), 0600);
  CHECK_THROWS_WITH(loadOrCreateSecret(shortPath), Catch::Contains("shorter than 16 bytes"));
  CHECK_THROWS_WITH(loadOrCreateSecret(std::string(dir) + "/no/such/dir/secret"), Catch::Contains("cannot create"));
  std::remove(path.c_str());
  std::remove(shortPath.c_str());
  rmdir(dir);
}

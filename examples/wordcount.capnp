# Payload types of the embedded-app example: typed Cap'n Proto payloads over flame.
@0xd7a1c9e2f3b40516;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("wordcount");

struct Document {
  text @0 :Text;
}

struct Counts {
  words @0 :UInt32;
  lines @1 :UInt32;
  runner @2 :Text;
}

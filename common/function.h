// flame::Function<In, Out>: a function's name and its argument and result types, declared once
// in a header that the caller and the runner share, so both sides agree on the payload format:
//
//   // resize_api.h
//   inline constexpr flame::Function<ResizeArgs, ResizeResult> resize{"resize"};
//
//   runner.serve(resize, [](ResizeArgs::Reader in, ResizeResult::Builder out) { ... });
//   auto r = client.call("thumbs", resize, args);   // Outcome<Typed<ResizeResult>>
//
// Supported payload types (PayloadCodec<T>; anything else is a compile error naming them):
//   - a Cap'n Proto struct: standard framing (segment table + segments, unpacked), readable by
//     any language; a caller passes a T::Reader (a T::Builder converts), a result is a Typed<T>
//     (an owned, validated message), a runner function reads a T::Reader;
//   - std::string: the bytes as they are;
//   - a trivially copyable type (int, double, a POD struct): its object representation, exactly
//     sizeof(T) bytes. Only for peers built for the same ABI (same compiler, same endianness).
// Decoding is the boundary with untrusted bytes: it never throws and says why it failed.
// Header-only and shared by the client and runner libraries (it holds no code of either).
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace flame {

// An owned Cap'n Proto message whose root is a T. get() never throws: the bytes were fully
// traversed and copied when the message was made. Movable; readers stay valid while it lives.
template <class T>
class Typed {
 public:
  explicit Typed(std::unique_ptr<capnp::MallocMessageBuilder> message)
      : message_(std::move(message)) {}

  typename T::Reader get() const { return message_->getRoot<T>().asReader(); }

 private:
  std::unique_ptr<capnp::MallocMessageBuilder> message_;
};

// A decoded payload, or why the bytes are not one (`error` is set exactly when `value` is not).
template <class T>
struct Decoded {
  std::optional<T> value;
  std::string error;
};

// The bytes of a Cap'n Proto message as a payload.
inline std::string capnpBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Parses untrusted bytes as a T: copies them to an aligned buffer (frames are not aligned),
// reads with traversal and nesting limits, and deep-copies into an owned message, so every
// bounds check happens here and not later, when a field is read.
template <class T>
Decoded<Typed<T>> decodeCapnp(std::string_view bytes) {
  constexpr size_t kWord = sizeof(capnp::word);
  if (bytes.empty()) return {std::nullopt, "empty message"};
  if (bytes.size() % kWord != 0)
    return {std::nullopt, std::to_string(bytes.size()) + " bytes is not a whole number of 8-byte words"};
  size_t count = bytes.size() / kWord;
  auto words = kj::heapArray<capnp::word>(count);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::ReaderOptions options;
    // A valid message traverses each word about once; the factor allows list overheads.
    options.traversalLimitInWords = count * 4 + 64;
    options.nestingLimit = 32;
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    auto owned = std::make_unique<capnp::MallocMessageBuilder>();
    owned->setRoot(reader.getRoot<T>());
    return {Typed<T>(std::move(owned)), {}};
  } catch (const kj::Exception& e) {
    return {std::nullopt, e.getDescription().cStr()};
  }
}

// How a T travels as a payload. Specialised below for the supported kinds; the primary
// template exists only to reject the rest with a readable message.
template <class T, class Enable = void>
struct PayloadCodec {
  static constexpr bool kSupported = false;
};

namespace detail {
template <class T, class = void>
struct IsCapnpStruct : std::false_type {};
// Generated struct classes (not their Readers or Builders) carry this marker.
template <class T>
struct IsCapnpStruct<T, std::void_t<typename T::_capnpPrivate::IsStruct>> : std::true_type {};
}  // namespace detail

// A Cap'n Proto struct.
template <class T>
struct PayloadCodec<T, std::enable_if_t<detail::IsCapnpStruct<T>::value>> {
  static constexpr bool kSupported = true;
  using Arg = typename T::Reader;  // what a caller passes
  using Value = Typed<T>;          // what a decoded payload is
  using View = typename T::Reader; // what a runner function reads (valid during the call)
  static std::string encode(Arg value) {
    capnp::MallocMessageBuilder message;
    message.setRoot(value);
    return capnpBytes(message);
  }
  static Decoded<Value> decode(std::string_view bytes) { return decodeCapnp<T>(bytes); }
  static View view(const Value& value) { return value.get(); }
};

// Bytes.
template <>
struct PayloadCodec<std::string> {
  static constexpr bool kSupported = true;
  using Arg = std::string_view;
  using Value = std::string;
  using View = std::string;
  static std::string encode(Arg value) { return std::string(value); }
  static Decoded<Value> decode(std::string_view bytes) { return {std::string(bytes), {}}; }
  static View view(Value& value) { return std::move(value); }
};

// A trivially copyable type that is neither of the above.
template <class T>
struct PayloadCodec<T, std::enable_if_t<!detail::IsCapnpStruct<T>::value && !std::is_same_v<T, std::string> &&
                                        std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                                        std::is_object_v<T>>> {
  static constexpr bool kSupported = true;
  using Arg = const T&;
  using Value = T;
  using View = T;
  static std::string encode(Arg value) {
    return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  static Decoded<Value> decode(std::string_view bytes) {
    if (bytes.size() != sizeof(T))
      return {std::nullopt, "expected " + std::to_string(sizeof(T)) + " bytes, got " + std::to_string(bytes.size())};
    T value;
    std::memcpy(&value, bytes.data(), sizeof(T));
    return {value, {}};
  }
  static View view(const Value& value) { return value; }
};

// A function as both sides name it. Cheap to copy; `name` must outlive it (a string literal).
template <class In, class Out>
struct Function {
  static_assert(PayloadCodec<In>::kSupported,
                "flame::Function<In, Out>: In must be a Cap'n Proto struct, std::string or a "
                "trivially copyable type");
  static_assert(PayloadCodec<Out>::kSupported,
                "flame::Function<In, Out>: Out must be a Cap'n Proto struct, std::string or a "
                "trivially copyable type");
  using Input = In;
  using Output = Out;

  constexpr explicit Function(std::string_view functionName) : name(functionName) {}
  std::string_view name;
};

}  // namespace flame

// Typed handlers. Runner::serve(Function<In, Out>, impl) (common/function.h) turns a function
// on typed values into a Handler: the payload is decoded as In before impl runs (bytes that do
// not decode fail the job with handlerError "bad payload for <function>: <why>", and impl never
// sees them), and what impl returns is encoded as Out. See functionHandler() for impl's forms.
//
// The older typed<In, Out>(fn) wraps a Cap'n Proto function without a shared declaration:
//
//   runner.handle("double", flame::typed<Num, Num>([](Num::Reader in, Num::Builder out,
//   flame::JobContext&) {
//     out.setValue(in.getValue() * 2);
//   }));
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "common/function.h"
#include "worker/handler.h"

namespace flame {

// The bytes of a Cap'n Proto message as a payload (what typed() reads and returns; clients use
// it to build arguments).
inline std::string messageBytes(capnp::MessageBuilder& message) { return capnpBytes(message); }

// Wraps `fn` as a Handler. The payload is copied into an aligned buffer (frames are not
// aligned), read with the default ReaderOptions; a kj::Exception thrown while `fn` runs (a
// malformed payload is detected lazily, when a field is read) fails the job with
// "bad payload: <description>".
template <class In, class Out>
Handler typed(std::function<void(typename In::Reader, typename Out::Builder, JobContext&)> fn) {
  return [fn = std::move(fn)](JobContext& job) -> HandlerResult {
    std::string_view payload = job.payload();
    if (payload.size() % sizeof(capnp::word) != 0)
      return fail("bad payload: " + std::to_string(payload.size()) +
                  " bytes is not a whole number of 8-byte words");
    auto words = kj::heapArray<capnp::word>(payload.size() / sizeof(capnp::word));
    if (!payload.empty()) std::memcpy(words.begin(), payload.data(), payload.size());
    capnp::MallocMessageBuilder out;
    try {
      capnp::FlatArrayMessageReader reader(words);
      fn(reader.getRoot<In>(), out.initRoot<Out>(), job);
    } catch (const kj::Exception& e) {
      return fail(std::string("bad payload: ") + e.getDescription().cStr());
    }
    return ok(messageBytes(out));
  };
}

// What a value-style function of a Function<In, Out> returns: an Out (anything its encoder
// takes: a std::string or string_view, the trivially copyable value) or a failure, fail("why")
// (the job ends with handlerError and that text). Declare the lambda's return type as
// flame::Reply<Out> when it returns both.
template <class Out>
class Reply {
 public:
  Reply(typename PayloadCodec<Out>::Arg value)  // NOLINT: implicit by design
      : result_(ok(PayloadCodec<Out>::encode(value))) {}
  // A template, so that a std::string (which HandlerResult also takes) is always a value.
  template <class F, std::enable_if_t<std::is_same_v<std::decay_t<F>, HandlerResult>, int> = 0>
  Reply(F&& failure) : result_(std::forward<F>(failure)) {}  // NOLINT: from fail()

  HandlerResult take() && { return std::move(result_); }

 private:
  HandlerResult result_;
};

// The Handler that serves `function` with `impl`. impl is called concurrently from several
// handler threads (one call per job), through a const reference, and must be copyable. Its
// forms, with View = In::Reader for a Cap'n Proto In (valid during the call), std::string, or
// the trivially copyable In:
//   - Out a Cap'n Proto struct: impl(View, Out::Builder[, JobContext&]) fills the result and
//     returns void, or a HandlerResult of which only a failure (fail("why")) counts;
//   - otherwise: impl(View[, JobContext&]) returns Out or Reply<Out>.
// Any other form is a compile error that says which forms fit.
template <class In, class Out, class Impl>
Handler functionHandler(const Function<In, Out>& function, Impl impl) {
  using View = typename PayloadCodec<In>::View;
  using Name = std::string;
  if constexpr (detail::IsCapnpStruct<Out>::value) {
    using Builder = typename Out::Builder;
    constexpr bool withContext = std::is_invocable_v<const Impl&, View, Builder, JobContext&>;
    static_assert(withContext || std::is_invocable_v<const Impl&, View, Builder>,
                  "Runner::serve(Function<In, Out>, impl): Out is a Cap'n Proto struct, so impl must be "
                  "callable as impl(View, Out::Builder) or impl(View, Out::Builder, JobContext&), where "
                  "View is In::Reader, std::string or the trivially copyable In");
    return [name = Name(function.name), impl = std::move(impl)](JobContext& job) -> HandlerResult {
      auto decoded = PayloadCodec<In>::decode(job.payload());
      if (!decoded.value) return fail("bad payload for " + name + ": " + decoded.error);
      capnp::MallocMessageBuilder out;
      try {
        auto builder = out.initRoot<Out>();
        auto call = [&] {
          if constexpr (withContext)
            return impl(PayloadCodec<In>::view(*decoded.value), builder, job);
          else
            return impl(PayloadCodec<In>::view(*decoded.value), builder);
        };
        using R = decltype(call());
        if constexpr (std::is_void_v<R>) {
          call();
        } else {
          static_assert(std::is_same_v<R, HandlerResult>,
                        "Runner::serve(Function<In, Out>, impl): a builder-style impl returns void or "
                        "a HandlerResult (fail(\"why\") to fail)");
          HandlerResult r = call();
          if (r.isError) return r;
        }
      } catch (const kj::Exception& e) {  // from Cap'n Proto while building (kj's own type)
        return fail(name + ": " + e.getDescription().cStr());
      }
      return ok(capnpBytes(out));
    };
  } else {
    constexpr bool withContext = std::is_invocable_v<const Impl&, View, JobContext&>;
    static_assert(withContext || std::is_invocable_v<const Impl&, View>,
                  "Runner::serve(Function<In, Out>, impl): impl must be callable as impl(View) or "
                  "impl(View, JobContext&), where View is In::Reader, std::string or the trivially "
                  "copyable In");
    using R = std::conditional_t<withContext, std::invoke_result<const Impl&, View, JobContext&>,
                                 std::invoke_result<const Impl&, View>>;
    static_assert(std::is_constructible_v<Reply<Out>, typename R::type>,
                  "Runner::serve(Function<In, Out>, impl): impl must return Out or flame::Reply<Out>");
    return [name = Name(function.name), impl = std::move(impl)](JobContext& job) -> HandlerResult {
      auto decoded = PayloadCodec<In>::decode(job.payload());
      if (!decoded.value) return fail("bad payload for " + name + ": " + decoded.error);
      if constexpr (withContext)
        return Reply<Out>(impl(PayloadCodec<In>::view(*decoded.value), job)).take();
      else
        return Reply<Out>(impl(PayloadCodec<In>::view(*decoded.value))).take();
    };
  }
}

}  // namespace flame

// RunBlocking: runs a coroutine on an io_context (on a fresh strand) and waits for its result.
//
// For command-line front ends and tests; never call it from one of the context's own threads.
#pragma once

#include <optional>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

namespace gimbal::net {

namespace detail {
// co_spawn needs a default-constructible result; std::optional makes any T one.
template <typename T>
boost::asio::awaitable<std::optional<T>> Optionally(boost::asio::awaitable<T> coro) {
  co_return std::optional<T>(co_await std::move(coro));
}
}  // namespace detail

template <typename T>
T RunBlocking(boost::asio::io_context& ctx, boost::asio::awaitable<T> coro) {
  auto fut = boost::asio::co_spawn(boost::asio::make_strand(ctx),
                                   detail::Optionally(std::move(coro)), boost::asio::use_future);
  return std::move(*fut.get());
}

}  // namespace gimbal::net

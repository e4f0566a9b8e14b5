// The compiled parts of Boost.Asio and Boost.Beast, built once here (separate compilation) rather
// than inlined into every file that uses them.
//
// GCC 12 reports -Wnull-dereference inside Asio's scheduler when it inlines it at -O2 and above
// (a thread-info pointer the code checks elsewhere); system-header suppression does not reach
// middle-end warnings, so this one third-party file ignores that warning. Our own code is not
// affected: it includes only Asio's headers, not these implementations.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>

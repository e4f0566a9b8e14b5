// NameRegistry: policy factories by name, for configs that select a policy by string.
//
// Thread-safe. Built-in entries are added once, on first use, by the function given to the
// constructor — explicitly rather than from static initialisers, which the linker drops from
// static libraries when nothing else references the object file. Find() on an unknown name
// returns NotFound with a message that lists every known name, so a typo in a config is easy to
// fix. `kind` names the registry in messages ("dispatch policy"). Make() is the one way the
// policy modules build a policy from a config: find, construct, check the parameters.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/params.h"
#include "core/status.h"

namespace gimbal {

template <typename Factory>
class NameRegistry {
 public:
  using Builtins = std::function<void(NameRegistry&)>;

  NameRegistry(std::string kind, Builtins builtins)
      : kind_(std::move(kind)), builtins_(std::move(builtins)) {}

  // False when the name is empty, the factory is empty or the name is taken.
  bool Register(const std::string& name, Factory factory) {
    EnsureBuiltins();
    std::lock_guard<std::mutex> lock(mu_);
    return RegisterLocked(name, std::move(factory));
  }

  // Sorted names.
  std::vector<std::string> Names() {
    EnsureBuiltins();
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> names;
    for (const auto& [name, f] : factories_) names.push_back(name);
    return names;
  }

  Result<Factory> Find(const std::string& name) {
    EnsureBuiltins();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = factories_.find(name);
    if (it != factories_.end()) return it->second;
    std::string known;
    for (const auto& [n, f] : factories_) known += (known.empty() ? "" : ", ") + n;
    return NotFound("unknown " + kind_ + " '" + name + "' (known: " + known + ")");
  }

  // Finds `name` and calls its factory with a fresh copy of `params` (so which keys were read
  // reflects this policy alone) and `args`. Unknown or malformed parameters are reported first,
  // as they usually explain a range error; every error names "<kind> '<name>'".
  template <typename... Args>
  auto Make(const std::string& name, const Params& params, Args&&... args)
      -> std::invoke_result_t<Factory, const Params&, Args...> {
    Result<Factory> factory = Find(name);
    if (!factory.ok()) return factory.status();
    const Params local(params.values());
    const std::string what = kind_ + " '" + name + "'";
    auto made = (*factory)(local, std::forward<Args>(args)...);
    GIMBAL_RETURN_IF_ERROR(local.Validate(what));
    if (!made.ok()) return made.status().WithContext(what);
    return made;
  }

  // For the builtins function only: registers without taking the lock it already runs under.
  bool RegisterBuiltin(const std::string& name, Factory factory) {
    return RegisterLocked(name, std::move(factory));
  }

 private:
  bool RegisterLocked(const std::string& name, Factory factory) {
    if (name.empty() || !factory) return false;
    return factories_.emplace(name, std::move(factory)).second;
  }

  void EnsureBuiltins() {
    std::call_once(once_, [this] {
      std::lock_guard<std::mutex> lock(mu_);
      if (builtins_) builtins_(*this);
    });
  }

  std::string kind_;
  Builtins builtins_;
  std::once_flag once_;
  std::mutex mu_;
  std::map<std::string, Factory> factories_;  // guarded by mu_
};

}  // namespace gimbal

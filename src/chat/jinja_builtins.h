#pragma once
// Jinja's filters, tests, global functions and the Python methods on
// strings, lists and dicts that chat templates call. Everything here throws
// jinja::Failure; the evaluator adds the template line.
#include <string>
#include <unordered_map>

#include "chat/jinja_value.h"

namespace thinkeys::jinja {

Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
bool apply_test(const std::string& name, const Value& input, CallArgs& args);

// `receiver.name` when it names a method (bound to the receiver); undefined
// otherwise. Mutating methods (append, pop, update...) are refused, as Hugging
// Face's sandboxed environment refuses them.
Value method(const Value& receiver, const std::string& name);

// raise_exception, strftime_now, namespace, range, dict.
void add_globals(std::unordered_map<std::string, Value>& frame);

}  // namespace thinkeys::jinja

#pragma once
// A capacity plan as a terminal table (one per context length) or as JSON.
#include <string>

#include "plan/capacity_plan.h"

namespace thinkeys {

// `source` names what the plan was made from (a path).
std::string plan_table_text(const CapacityPlan& plan, const std::string& source);
std::string plan_json(const CapacityPlan& plan, const std::string& source);

}  // namespace thinkeys

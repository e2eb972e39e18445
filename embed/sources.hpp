// The discovery-source registry's private side (its public side is sluice.hpp's register_source and
// find_source; the registry and the built-in "kubernetes" source are in sources.cpp).
#pragma once

#include <string>
#include <vector>

namespace sluice {

// Every name find_source() knows: the registered ones and the built-ins, sorted. Any thread.
std::vector<std::string> source_names();

}  // namespace sluice

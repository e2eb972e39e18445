#include "config/parse.hpp"

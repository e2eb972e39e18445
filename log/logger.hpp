// Sluice's one logger, for every layer: one line per message to stderr ("<UTC time> <level> <message>"),
// written with one write(2) so lines from different threads never interleave. Public header (installed
// with libsluice): an embedding program may log through it too. Standard library only.
#pragma once

#include <string>
#include <string_view>

namespace sluice::log {

enum class Level { trace = 0, debug = 1, info = 2, warn = 3, error = 4 };

// Parses "trace|debug|info|warn|error"; false when unknown.
bool parse_level(std::string_view text, Level& out);

// Sets the minimum level printed. Call once at startup, before workers start.
void set_level(Level level);
bool enabled(Level level);

// Writes `message` with a timestamp and level. Any thread.
void write(Level level, std::string_view message);

inline void trace(std::string_view m) { if (enabled(Level::trace)) write(Level::trace, m); }
inline void debug(std::string_view m) { if (enabled(Level::debug)) write(Level::debug, m); }
inline void info(std::string_view m) { if (enabled(Level::info)) write(Level::info, m); }
inline void warn(std::string_view m) { if (enabled(Level::warn)) write(Level::warn, m); }
inline void error(std::string_view m) { if (enabled(Level::error)) write(Level::error, m); }

}  // namespace sluice::log

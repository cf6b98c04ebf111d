// <regex> behind a pragma: GCC 12 reports a false -Wmaybe-uninitialized
// inside libstdc++'s regex automaton at -O1 with the sanitizers (GCC bug
// 105562), which -Werror would turn into a build failure.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <regex>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

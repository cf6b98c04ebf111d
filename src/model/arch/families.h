// The family definitions, one per file in model/arch/ (registry.cpp lists them).
#pragma once

#include "model/arch/family.h"

namespace qf::model {

extern const Family kLlama;    // llama.cpp
extern const Family kMistral;  // llama.cpp
extern const Family kQwen2;    // qwen.cpp
extern const Family kQwen3;    // qwen.cpp
extern const Family kGemma3;   // gemma3.cpp
extern const Family kPhi3;     // phi3.cpp
extern const Family kGpt2;     // gpt2.cpp

}  // namespace qf::model

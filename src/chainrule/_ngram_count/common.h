// Shared definitions of the compiled n-gram counter (core.cpp, text.h, arpa_text.h).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>

namespace ngram_count {

namespace py = pybind11;


using u64 = uint64_t;
using u128 = unsigned __int128;
constexpr int kBits = 21;  // bits per id, as chainrule/models/ngram/counting.py
constexpr u64 kMask = (u64{1} << kBits) - 1;
constexpr int64_t kMaxVocab = int64_t{1} << kBits;

}  // namespace ngram_count

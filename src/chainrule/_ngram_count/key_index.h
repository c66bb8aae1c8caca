// An open-addressing hash index over a table's sorted int64 keys: key -> position. Finds each
// n-gram's context (its words but the last) in table k-1, for the in-memory derivation and, a
// chunk at a time, for the out-of-core estimator (KeyIndex in Python).
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace ngram_count {

class KeyIndex {
 public:
  KeyIndex(const int64_t* keys, size_t m) : keys_(keys) {
    size_t cap = 1;
    while (cap < 2 * m + 2) { cap <<= 1; --shift_; }
    mask_ = cap - 1;
    slot_.assign(cap, UINT32_MAX);
    for (size_t j = 0; j < m; ++j) {
      size_t h = home(keys[j]);
      while (slot_[h] != UINT32_MAX) h = (h + 1) & mask_;
      slot_[h] = static_cast<uint32_t>(j);
    }
  }
  // the position of ``q`` among the keys, or -1
  int64_t find(int64_t q) const {
    size_t h = home(q);
    while (slot_[h] != UINT32_MAX && keys_[slot_[h]] != q) h = (h + 1) & mask_;
    return slot_[h] == UINT32_MAX ? -1 : static_cast<int64_t>(slot_[h]);
  }

 private:
  size_t home(int64_t key) const {
    return static_cast<size_t>((static_cast<u64>(key) * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  const int64_t* keys_;
  int shift_ = 64;
  size_t mask_ = 0;
  std::vector<uint32_t> slot_;
};

// the Python object: an index over one int64 array (kept alive with it)
class PyKeyIndex {
 public:
  using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
  explicit PyKeyIndex(I64 keys) : keys_(std::move(keys)), index_(keys_.data(), keys_.size()) {}
  I64 find(I64 queries) const {
    I64 out(queries.size());
    const int64_t* q = queries.data();
    int64_t* o = out.mutable_data();
    size_t n = static_cast<size_t>(queries.size());
    {
      py::gil_scoped_release release;
      for (size_t i = 0; i < n; ++i) o[i] = index_.find(q[i]);
    }
    return out;
  }

 private:
  I64 keys_;
  KeyIndex index_;
};

}  // namespace ngram_count

// Every order's table derived in memory (the in-memory path): parents, first words and raw
// counts as the sorted windows go by, then the int64 keys (suffix encoding), raw counts and
// each entry's context index (through a hash index over table k-1) as numpy arrays.
#pragma once

#include <cstring>
#include <stdexcept>
#include <vector>

#include "common.h"
#include "key_index.h"

namespace ngram_count {

struct Derived {  // every order's table as it is built
  std::vector<std::vector<uint32_t>> parent, first;
  std::vector<std::vector<int64_t>> raw;
  std::vector<int64_t> raw1;
};

inline py::dict derived_arrays(Derived& derived_, int N_, int64_t V_) {
  py::list keys, raw, context;
  py::array_t<int64_t> r1(V_);
  std::memcpy(r1.mutable_data(), derived_.raw1.data(), sizeof(int64_t) * V_);
  std::vector<int64_t>().swap(derived_.raw1);
  raw.append(r1);
  std::vector<const int64_t*> key_ptr(N_ + 1, nullptr), ctx_ptr(N_ + 1, nullptr);
  std::vector<size_t> sizes(N_ + 1, 0);
  sizes[1] = static_cast<size_t>(V_);
  for (int k = 2; k <= N_; ++k) {
    size_t n = derived_.raw[k].size();
    sizes[k] = n;
    py::array_t<int64_t> kk(n), rr(n), cc(n);
    int64_t* kd = kk.mutable_data();
    int64_t* cd = cc.mutable_data();
    const auto& par = derived_.parent[k];
    const auto& fst = derived_.first[k];
    for (size_t i = 0; i < n; ++i) kd[i] = static_cast<int64_t>(par[i]) * V_ + fst[i];
    std::memcpy(rr.mutable_data(), derived_.raw[k].data(), sizeof(int64_t) * n);
    // context (w1 .. w_{k-1}) of each entry: its index in table k-1, through a hash index
    if (k == 2) {
      for (size_t i = 0; i < n; ++i) cd[i] = fst[i];
    } else {
      KeyIndex index(key_ptr[k - 1], sizes[k - 1]);
      const int64_t* pc = ctx_ptr[k - 1];
      for (size_t i = 0; i < n; ++i) {
        cd[i] = index.find(pc[par[i]] * V_ + fst[i]);
        if (cd[i] < 0) throw std::logic_error("an n-gram's context is missing");
      }
    }
    std::vector<uint32_t>().swap(derived_.parent[k]);
    std::vector<uint32_t>().swap(derived_.first[k]);
    std::vector<int64_t>().swap(derived_.raw[k]);
    key_ptr[k] = kd;
    ctx_ptr[k] = cd;
    keys.append(kk);
    raw.append(rr);
    context.append(cc);
  }
  py::dict out;
  out["keys"] = keys;
  out["raw"] = raw;
  out["context"] = context;
  return out;
}

}  // namespace ngram_count

// A stable argsort of non-negative int64 keys (LSD radix, 11 bits a pass), for chainrule's
// compiled ARPA reader (core.cpp): the permutation np.argsort(keys, kind="stable") gives, in a
// few linear passes, where numpy's timsort is slow on the keys of an unsorted section.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace chainrule_arpa {

inline void radix_argsort(const int64_t* keys, int64_t n, int64_t* order) {
  constexpr int kBits = 11;
  constexpr size_t kBuckets = size_t{1} << kBits;
  struct Item {
    uint64_t key;
    int64_t idx;
  };
  uint64_t top = 0;
  for (int64_t i = 0; i < n; ++i) top |= static_cast<uint64_t>(keys[i]);
  int passes = 0;
  while (passes * kBits < 64 && (top >> (passes * kBits)) != 0) ++passes;
  std::vector<int64_t> start(kBuckets * passes, 0);  // every pass's histogram in one read
  std::vector<Item> a(n), b(n);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k = static_cast<uint64_t>(keys[i]);
    a[i] = Item{k, i};
    for (int p = 0; p < passes; ++p) ++start[p * kBuckets + ((k >> (p * kBits)) & (kBuckets - 1))];
  }
  for (int p = 0; p < passes; ++p) {
    int64_t* s = start.data() + p * kBuckets;
    int64_t sum = 0;
    for (size_t d = 0; d < kBuckets; ++d) {
      const int64_t c = s[d];
      s[d] = sum;
      sum += c;
    }
    const int shift = p * kBits;
    for (int64_t i = 0; i < n; ++i) b[s[(a[i].key >> shift) & (kBuckets - 1)]++] = a[i];
    a.swap(b);
  }
  for (int64_t i = 0; i < n; ++i) order[i] = a[i].idx;
}

}  // namespace chainrule_arpa

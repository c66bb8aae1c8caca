// Every k-gram's suffix (its last k - 1 words) as a line of section k - 1, for chainrule's
// compiled ARPA reader (core.cpp): a hash table of section k - 1's rows, probed in a pipeline of
// prefetches (slot, then the candidate line's words); lines in a row that share their suffix
// (suffix-grouped files, as KenLM writes them) need no lookup.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace chainrule_arpa {

struct Section {
  std::vector<float> prob, backoff;
  std::vector<int64_t> rows;    // n * k file-order unigram indices
  std::vector<int64_t> suffix;  // (k >= 3) the line of w2 .. wk in section k - 1
};

constexpr int64_t kBlock = 32;  // lines whose lookups are prefetched before they are made

inline uint64_t hash_ids(const int64_t* ids, int m) {
  uint64_t h = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(m);
  for (int i = 0; i < m; ++i) {
    h = (h ^ static_cast<uint64_t>(ids[i])) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  return h | 1;  // never 0 (0 marks a copy below)
}

// Fill hi.suffix (hi is section k, lo section k - 1); false for a suffix that is missing or an
// n-gram of lo listed twice (the Python reader words the error).
inline bool find_suffixes(const Section& lo, Section& hi, int k) {
  const int m = k - 1;
  const int64_t n_lo = static_cast<int64_t>(lo.prob.size());
  if (n_lo > INT32_MAX) return false;
  struct Slot {
    uint32_t tag;
    int32_t line;  // -1: empty
  };
  size_t cap = 16;
  while (cap < static_cast<size_t>(n_lo + n_lo / 3 + 1)) cap <<= 1;
  std::vector<Slot> slots(cap, Slot{0, -1});
  const size_t mask = cap - 1;
  const int64_t* rows = lo.rows.data();
  auto same = [m](const int64_t* a, const int64_t* b) {
    for (int i = 0; i < m; ++i)
      if (a[i] != b[i]) return false;
    return true;
  };
  for (int64_t r = 0; r < n_lo; ++r) {
    const int64_t* t = rows + r * m;
    const uint64_t h = hash_ids(t, m);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t s = h & mask;; s = (s + 1) & mask) {
      if (slots[s].line < 0) {
        slots[s] = Slot{tag, static_cast<int32_t>(r)};
        break;
      }
      if (slots[s].tag == tag && same(rows + int64_t{slots[s].line} * m, t)) return false;
    }
  }
  const int64_t n_hi = static_cast<int64_t>(hi.prob.size());
  hi.suffix.resize(n_hi);
  int64_t* out = hi.suffix.data();
  // Three blocks of lines in flight: block b hashes its suffixes and prefetches their slots,
  // block b - 1 finds the slot whose tag matches and prefetches that line's words, block b - 2
  // compares the words (and probes on past a false match) and writes the answer.
  struct Item {
    uint64_t hash;  // 0: the same suffix as the line before (copied)
    size_t slot;    // the first slot whose tag matched
    int64_t line;   // its line, -1 for none
  };
  std::vector<Item> ring(3 * kBlock);
  const int64_t n_blocks = (n_hi + kBlock - 1) / kBlock;
  auto block = [&](int64_t b) { return ring.data() + (b % 3) * kBlock; };
  auto size = [&](int64_t b) { return std::min(kBlock, n_hi - b * kBlock); };
  auto words = [&](int64_t j) { return hi.rows.data() + j * k + 1; };
  auto hash_block = [&](int64_t b) {
    Item* it = block(b);
    for (int64_t i = 0, j = b * kBlock; i < size(b); ++i, ++j) {
      if (j > 0 && same(words(j) - k, words(j))) {
        it[i].hash = 0;
        continue;
      }
      it[i].hash = hash_ids(words(j), m);
      __builtin_prefetch(&slots[it[i].hash & mask]);
    }
  };
  auto probe_block = [&](int64_t b) {
    Item* it = block(b);
    for (int64_t i = 0; i < size(b); ++i) {
      if (it[i].hash == 0) continue;
      const uint32_t tag = static_cast<uint32_t>(it[i].hash >> 32);
      size_t s = it[i].hash & mask;
      while (slots[s].line >= 0 && slots[s].tag != tag) s = (s + 1) & mask;
      it[i].slot = s;
      it[i].line = slots[s].line;
      if (it[i].line >= 0) __builtin_prefetch(rows + it[i].line * m);
    }
  };
  auto answer_block = [&](int64_t b) {
    const Item* it = block(b);
    for (int64_t i = 0, j = b * kBlock; i < size(b); ++i, ++j) {
      if (it[i].hash == 0) {
        out[j] = out[j - 1];
        continue;
      }
      const int64_t* t = words(j);
      const uint32_t tag = static_cast<uint32_t>(it[i].hash >> 32);
      out[j] = -1;
      for (size_t s = it[i].slot; slots[s].line >= 0; s = (s + 1) & mask) {
        if (slots[s].tag == tag && same(rows + int64_t{slots[s].line} * m, t)) {
          out[j] = slots[s].line;
          break;
        }
      }
      if (out[j] < 0) return false;
    }
    return true;
  };
  for (int64_t b = 0; b < n_blocks + 2; ++b) {
    if (b < n_blocks) hash_block(b);
    if (b >= 1 && b - 1 < n_blocks) probe_block(b - 1);
    if (b >= 2 && !answer_block(b - 2)) return false;
  }
  return true;
}

}  // namespace chainrule_arpa

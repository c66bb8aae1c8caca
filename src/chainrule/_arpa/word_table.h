// The unigram words of an ARPA file as an open-addressing hash table (chainrule's compiled
// ARPA reader, core.cpp). The first spelling of a word wins. A slot holds a word's first sixteen
// bytes, its length, 32 bits of its hash and its index, so nearly every lookup (words of up to
// sixteen bytes) reads one cache line; longer words compare the rest in the file's buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace chainrule_arpa {

class WordTable {
 public:
  struct alignas(32) Slot {
    uint64_t head[2];  // the first sixteen bytes, zero-padded
    uint32_t hash;     // low bits: the home slot
    int32_t id;        // -1: empty
  };

  explicit WordTable(size_t n) {
    size_t cap = 16;
    while (cap < n + n / 3 + 1) cap <<= 1;  // at most 3/4 full
    slots_.assign(cap, Slot{{0, 0}, 0, -1});
    mask_ = cap - 1;
  }

  void insert(std::string_view w, int64_t id, const std::vector<std::string_view>& words) {
    const Slot key = make(w, id);
    for (size_t s = key.hash & mask_;; s = (s + 1) & mask_) {
      if (slots_[s].id < 0) {
        slots_[s] = key;
        return;
      }
      if (same(slots_[s], key, w, words)) return;
    }
  }

  // the id of ``w`` (its key from make) or -1
  int64_t find(std::string_view w, const Slot& key,
               const std::vector<std::string_view>& words) const {
    for (size_t s = key.hash & mask_;; s = (s + 1) & mask_) {
      const Slot& slot = slots_[s];
      if (slot.id < 0) return -1;
      if (same(slot, key, w, words)) return slot.id;
    }
  }

  void prefetch(const Slot& key) const { __builtin_prefetch(&slots_[key.hash & mask_]); }

  static Slot make(std::string_view w, int64_t id) {
    uint64_t head[2] = {0, 0};
    std::memcpy(head, w.data(), w.size() < 16 ? w.size() : 16);
    // eight bytes at a time, multiplied and folded, then a final mix
    uint64_t h = head[0] * 0x9e3779b97f4a7c15ull ^ (head[1] + w.size()) * 0xc2b2ae3d27d4eb4full;
    for (size_t i = 16; i < w.size(); i += 8) {
      uint64_t x = 0;
      std::memcpy(&x, w.data() + i, w.size() - i < 8 ? w.size() - i : 8);
      h = (h ^ x) * 0x9e3779b97f4a7c15ull;
      h ^= h >> 32;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    // the length goes into the hash's top byte: equal heads and hashes mean equal lengths
    // for words of up to sixteen bytes (longer ones compare in full)
    const uint32_t tag = (static_cast<uint32_t>(h) & 0x00ffffffu) |
                         (static_cast<uint32_t>(w.size() < 255 ? w.size() : 255) << 24);
    return Slot{{head[0], head[1]}, tag, static_cast<int32_t>(id)};
  }

 private:
  static bool same(const Slot& slot, const Slot& key, std::string_view w,
                   const std::vector<std::string_view>& words) {
    if (slot.hash != key.hash || slot.head[0] != key.head[0] || slot.head[1] != key.head[1])
      return false;
    if (w.size() <= 16) return true;  // the same length (below 255) and the same bytes
    const std::string_view other = words[slot.id];
    if (other.size() != w.size()) return false;
    for (size_t i = 16; i < w.size(); ++i)
      if (other[i] != w[i]) return false;
    return true;
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace chainrule_arpa

// Words of UTF-8 text: Python's whitespace and line breaks, and an open-addressing vocabulary.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace ngram_count {

// -- the vocabulary: open addressing over one arena of UTF-8 bytes ----------------------------
class Vocab {
 public:
  int32_t find(const char* p, size_t n, u64 h) const {
    if (slots_.empty()) return -1;
    for (u64 s = h & mask_;; s = (s + 1) & mask_) {
      int32_t e = slots_[s];
      if (e < 0) return -1;
      if (hash_[e] == h && len_[e] == n && std::memcmp(arena_.data() + off_[e], p, n) == 0)
        return id_[e];
    }
  }
  // add (or re-point, like a Python dict assignment) word -> id
  void put(const char* p, size_t n, u64 h, int32_t id) {
    if ((off_.size() + 1) * 2 > slots_.size()) grow();
    for (u64 s = h & mask_;; s = (s + 1) & mask_) {
      int32_t e = slots_[s];
      if (e < 0) {
        slots_[s] = static_cast<int32_t>(off_.size());
        off_.push_back(arena_.size());
        len_.push_back(static_cast<uint32_t>(n));
        hash_.push_back(h);
        id_.push_back(id);
        arena_.append(p, n);
        return;
      }
      if (hash_[e] == h && len_[e] == n && std::memcmp(arena_.data() + off_[e], p, n) == 0) {
        id_[e] = id;
        return;
      }
    }
  }
  static u64 hash(const char* p, size_t n) {
    u64 h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ULL;
    return h ^ (h >> 29);
  }

 private:
  void grow() {
    size_t size = slots_.empty() ? 1024 : slots_.size() * 2;
    slots_.assign(size, -1);
    mask_ = size - 1;
    for (size_t e = 0; e < off_.size(); ++e) {
      u64 s = hash_[e] & mask_;
      while (slots_[s] >= 0) s = (s + 1) & mask_;
      slots_[s] = static_cast<int32_t>(e);
    }
  }
  std::string arena_;
  std::vector<u64> off_;
  std::vector<uint32_t> len_;
  std::vector<u64> hash_;
  std::vector<int32_t> id_;
  std::vector<int32_t> slots_;
  u64 mask_ = 0;
};

// Python's str.split() whitespace and str.splitlines() line breaks, on UTF-8 bytes.
// Returns the byte length of the separator at p (0 if none); *brk tells a line break.
inline size_t separator(const unsigned char* p, const unsigned char* end, bool* brk) {
  unsigned char c = p[0];
  if (c < 0x80) {
    if (c == ' ' || c == '\t' || c == 0x1f) { *brk = false; return 1; }
    if (c == '\n' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e)) { *brk = true; return 1; }
    if (c == '\r') {
      *brk = true;
      return (p + 1 < end && p[1] == '\n') ? 2 : 1;
    }
    return 0;
  }
  if (c == 0xc2 && p + 1 < end) {
    if (p[1] == 0x85) { *brk = true; return 2; }
    if (p[1] == 0xa0) { *brk = false; return 2; }
    return 0;
  }
  if (c == 0xe1 && p + 2 < end && p[1] == 0x9a && p[2] == 0x80) { *brk = false; return 3; }
  if (c == 0xe2 && p + 2 < end) {
    if (p[1] == 0x80) {
      unsigned char d = p[2];
      if (d >= 0x80 && d <= 0x8a) { *brk = false; return 3; }
      if (d == 0xa8 || d == 0xa9) { *brk = true; return 3; }
      if (d == 0xaf) { *brk = false; return 3; }
      return 0;
    }
    if (p[1] == 0x81 && p[2] == 0x9f) { *brk = false; return 3; }
    return 0;
  }
  if (c == 0xe3 && p + 2 < end && p[1] == 0x80 && p[2] == 0x80) { *brk = false; return 3; }
  return 0;
}

}  // namespace ngram_count

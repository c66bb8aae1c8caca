// Sorted runs of distinct windows: made in memory, or spilled to disk as two files (the keys,
// then their counts) and read back a block at a time for the merge.
#pragma once

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

namespace ngram_count {

struct Run {  // a sorted run of distinct windows, in memory
  template <class K>
  static void unique(std::vector<K>& keys, std::vector<u64>& counts) {
    std::sort(keys.begin(), keys.end());
    counts.clear();
    size_t w = 0;
    for (size_t i = 0; i < keys.size();) {
      size_t j = i + 1;
      while (j < keys.size() && keys[j] == keys[i]) ++j;
      keys[w] = keys[i];
      counts.push_back(j - i);
      ++w;
      i = j;
    }
    keys.resize(w);
  }

  // sort ``keys``, make them distinct in place and write them to ``name + ".keys"`` and their
  // counts to ``name + ".counts"``; no second array of the buffer's size is allocated
  template <class K>
  static void spill(std::vector<K>& keys, const std::string& name) {
    std::sort(keys.begin(), keys.end());
    FILE* fc = std::fopen((name + ".counts").c_str(), "wb");
    if (!fc) throw std::runtime_error("cannot write a spilled n-gram run at " + name);
    std::vector<u64> block;
    block.reserve(1 << 15);
    bool ok = true;
    size_t w = 0;
    for (size_t i = 0; i < keys.size();) {
      size_t j = i + 1;
      while (j < keys.size() && keys[j] == keys[i]) ++j;
      keys[w++] = keys[i];
      block.push_back(j - i);
      if (block.size() == block.capacity()) {
        ok = ok && std::fwrite(block.data(), sizeof(u64), block.size(), fc) == block.size();
        block.clear();
      }
      i = j;
    }
    ok = ok && std::fwrite(block.data(), sizeof(u64), block.size(), fc) == block.size();
    ok = (std::fclose(fc) == 0) && ok;
    FILE* fk = std::fopen((name + ".keys").c_str(), "wb");
    ok = ok && fk && std::fwrite(keys.data(), sizeof(K), w, fk) == w;
    if (fk) ok = (std::fclose(fk) == 0) && ok;
    if (!ok) throw std::runtime_error("cannot write a spilled n-gram run at " + name +
                                      " (is the disk full?)");
  }
};

template <class K>
struct RunReader {  // a run spilled to disk, read back in blocks
  FILE* f = nullptr;   // the keys
  FILE* fc = nullptr;  // the counts
  u64 left = 0;
  std::vector<K> keys;
  std::vector<u64> counts;
  size_t pos = 0, block = 0;
  void open(const std::string& name, size_t block_size) {
    f = std::fopen((name + ".keys").c_str(), "rb");
    fc = std::fopen((name + ".counts").c_str(), "rb");
    long size = -1;
    if (f && std::fseek(f, 0, SEEK_END) == 0) size = std::ftell(f);
    if (!f || !fc || size < 0 || std::fseek(f, 0, SEEK_SET) != 0)
      throw std::runtime_error("a spilled n-gram run could not be read back");
    left = static_cast<u64>(size) / sizeof(K);
    block = block_size;
    next_block();
  }
  void close() {
    if (f) std::fclose(f);
    if (fc) std::fclose(fc);
    f = fc = nullptr;
  }
  bool next_block() {
    size_t n = static_cast<size_t>(std::min<u64>(left, block));
    keys.resize(n);
    counts.resize(n);
    if (n && (std::fread(keys.data(), sizeof(K), n, f) != n ||
              std::fread(counts.data(), sizeof(u64), n, fc) != n))
      throw std::runtime_error("a spilled n-gram run could not be read back");
    left -= n;
    pos = 0;
    return n > 0;
  }
};

}  // namespace ngram_count

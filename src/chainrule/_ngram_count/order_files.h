// The out-of-core derivation: as the merged, sorted windows go by, every order's table is
// written to disk instead of being held. Per order k >= 2, three files of int64 in table order:
//   keys<k>.i64  the suffix encoding (index of the suffix in table k-1 * V + first word)
//   raw<k>.i64   the raw counts
//   left<k>.i64  (k < N) how many distinct words precede the n-gram: the order-(k+1) entries
//                whose suffix it is, i.e. Kneser-Ney's adjusted count before the <s> rule
// Entries of one order are contiguous in the sorted windows, so each order keeps only its open
// entry; the unigram arrays (V of them) stay in memory.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

namespace ngram_count {

class Int64Writer {  // a buffered binary file of int64
 public:
  void open(const std::string& name) {
    name_ = name;
    f_ = std::fopen(name.c_str(), "wb");
    if (!f_) throw std::runtime_error("cannot write the n-gram table file " + name);
    buf_.reserve(kBlock);
  }
  void put(int64_t v) {
    buf_.push_back(v);
    if (buf_.size() == kBlock) flush();
  }
  void close() {
    if (!f_) return;
    flush();
    bool ok = std::fclose(f_) == 0;
    f_ = nullptr;
    if (!ok) fail();
  }
  ~Int64Writer() {
    if (f_) std::fclose(f_);
  }

 private:
  static constexpr size_t kBlock = size_t{1} << 15;
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), sizeof(int64_t), buf_.size(), f_) != buf_.size())
      fail();
    buf_.clear();
  }
  [[noreturn]] void fail() {
    throw std::runtime_error("cannot write the n-gram table file " + name_ + " (is the disk full?)");
  }
  std::string name_;
  FILE* f_ = nullptr;
  std::vector<int64_t> buf_;
};

class OrderFiles {
 public:
  OrderFiles(int N, int64_t V, const std::string& dir)
      : N_(N), V_(V), keys_(N + 1), raw_(N + 1), left_(N + 1), open_(N + 1), n_(N + 1, 0) {
    left1.assign(static_cast<size_t>(V), 0);
    for (int k = 2; k <= N; ++k) {
      std::string s = std::to_string(k);
      keys_[k].open(dir + "/keys" + s + ".i64");
      raw_[k].open(dir + "/raw" + s + ".i64");
      if (k < N) left_[k].open(dir + "/left" + s + ".i64");
    }
  }
  // a new entry of order k >= 2 (parent: index of its suffix in table k-1); the open entry of
  // order k-1 (k = 2: the unigram ``parent``) gains one left extension
  void start(int k, int64_t parent, uint32_t first) {
    if (n_[k]) emit(k);
    open_[k] = {parent * V_ + first, 0, 0};
    ++n_[k];
    if (k == 2) ++left1[static_cast<size_t>(parent)];
    else ++open_[k - 1].left;
  }
  void add(int k, u64 count) { open_[k].raw += static_cast<int64_t>(count); }
  int64_t last(int k) const { return n_[k] - 1; }
  int64_t size(int k) const { return n_[k]; }
  void close() {
    for (int k = 2; k <= N_; ++k) {
      if (n_[k]) emit(k);
      keys_[k].close();
      raw_[k].close();
      left_[k].close();
    }
  }
  std::vector<int64_t> left1;

 private:
  struct Entry {
    int64_t key, raw, left;
  };
  void emit(int k) {
    keys_[k].put(open_[k].key);
    raw_[k].put(open_[k].raw);
    if (k < N_) left_[k].put(open_[k].left);
  }
  int N_;
  int64_t V_;
  std::vector<Int64Writer> keys_, raw_, left_;
  std::vector<Entry> open_;
  std::vector<int64_t> n_;
};

}  // namespace ngram_count

// The text of an ARPA file: printf's "%.8g" of float32 values, exactly, and the lines of a section.
#pragma once

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

namespace ngram_count {

// -- ARPA text ----------------------------------------------------------------------------------
// printf's "%.8g" of a float32, exactly (correct rounding, half to even), with integer
// arithmetic for the magnitudes a model holds (1e-18 <= |v| < 1e8); std::to_chars otherwise.
inline char* g8_slow(char* out, double v) {
  return std::to_chars(out, out + 40, v, std::chars_format::general, 8).ptr;
}

constexpr u64 kPow10[] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
                          10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
                          100000000000ULL, 1000000000000ULL, 10000000000000ULL,
                          100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
                          100000000000000000ULL, 1000000000000000000ULL};

// round(mant * 2^e2 * 10^p) to an integer (half to even); false if it does not fit the fast path
inline bool scaled(u64 mant, int e2, int p, u64* q) {
  if (p < 0 || p > 18 || e2 > 0 || -e2 >= 120) return false;
  u128 num = static_cast<u128>(mant) * kPow10[p];  // < 2^24 * 2^60
  int sh = -e2;
  if (sh == 0) { *q = static_cast<u64>(num); return true; }
  u128 quot = num >> sh;
  u128 rem = num - (quot << sh);
  u128 half = static_cast<u128>(1) << (sh - 1);
  if (rem > half || (rem == half && (quot & 1))) ++quot;
  *q = static_cast<u64>(quot);
  return true;
}

inline char* put_float(char* out, float value) {
  double v = static_cast<double>(value);
  if (std::isinf(v) && v < 0) v = -99.0;  // zero probability, as KenLM and SRILM write it
  if (v == 0.0 || std::isnan(v) || std::isinf(v)) return g8_slow(out, v == 0.0 ? 0.0 : v);
  double a = std::fabs(v);
  if (a < 1e-18 || a >= 1e8) return g8_slow(out, v);
  int ex;
  double fr = std::frexp(a, &ex);  // a = fr * 2^ex, fr in [0.5, 1)
  u64 mant = static_cast<u64>(std::ldexp(fr, 24));  // exact: a float32 has 24 bits
  int e2 = ex - 24;
  int e = static_cast<int>(std::floor(std::log10(a)));
  u64 n = 0;
  for (int tries = 0;; ++tries) {  // the decimal exponent e with 10^7 <= round(a 10^(7-e)) < 10^8
    if (tries > 3 || !scaled(mant, e2, 7 - e, &n)) return g8_slow(out, v);
    if (n < 10000000ULL) { --e; continue; }
    if (n >= 100000000ULL) {
      if (n == 100000000ULL && scaled(mant, e2, 6 - e, &n) && n == 10000000ULL) { ++e; break; }
      ++e;
      continue;
    }
    break;
  }
  char digits[8];
  for (int i = 7; i >= 0; --i) { digits[i] = static_cast<char>('0' + n % 10); n /= 10; }
  int nd = 8;
  while (nd > 1 && digits[nd - 1] == '0') --nd;  // %g drops trailing zeros
  char* o = out;
  if (v < 0) *o++ = '-';
  if (e < -4 || e >= 8) {  // d.ddde[+-]XX
    *o++ = digits[0];
    if (nd > 1) { *o++ = '.'; for (int i = 1; i < nd; ++i) *o++ = digits[i]; }
    *o++ = 'e';
    *o++ = e < 0 ? '-' : '+';
    int x = e < 0 ? -e : e;
    if (x >= 100) *o++ = static_cast<char>('0' + x / 100);
    *o++ = static_cast<char>('0' + (x / 10) % 10);
    *o++ = static_cast<char>('0' + x % 10);
  } else if (e >= 0) {
    for (int i = 0; i <= e; ++i) *o++ = i < nd ? digits[i] : '0';
    if (nd > e + 1) { *o++ = '.'; for (int i = e + 1; i < nd; ++i) *o++ = digits[i]; }
  } else {
    *o++ = '0';
    *o++ = '.';
    for (int i = 0; i < -e - 1; ++i) *o++ = '0';
    for (int i = 0; i < nd; ++i) *o++ = digits[i];
  }
  return o;
}

// the numbers as put_float writes them, one per line (for tests against Python's "%.8g")
inline py::bytes format_floats(py::array_t<float, py::array::c_style | py::array::forcecast> values) {
  std::string out;
  char num[48];
  for (py::ssize_t i = 0; i < values.size(); ++i) {
    char* e = put_float(num, values.data()[i]);
    out.append(num, e - num);
    out.push_back('\n');
  }
  return py::bytes(out);
}

// The spelling of every id, converted once.
struct ArpaWords {
  explicit ArpaWords(std::vector<std::string> w) : words(std::move(w)) {}
  std::vector<std::string> words;
};

// Lines k-grams [start, stop) of a model: "prob<TAB>w1 .. wk[<TAB>backoff]\n".
inline py::bytes arpa_lines(const ArpaWords& vocab, int64_t V, py::list keys, py::list prob,
                     py::list backoff, int k, int64_t start, int64_t stop, bool with_backoff,
                     py::array_t<bool, py::array::c_style | py::array::forcecast> keep1) {
  const std::vector<std::string>& words = vocab.words;
  using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
  using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
  std::vector<I64> key_arr;
  for (int j = 0; j < k; ++j) key_arr.push_back(keys[j].cast<I64>());
  F32 p = prob[k - 1].cast<F32>();
  F32 b = backoff[k - 1].cast<F32>();
  if (static_cast<int64_t>(words.size()) != V) throw std::invalid_argument("words != V");
  if (start < 0 || stop > static_cast<int64_t>(p.size()) || stop > static_cast<int64_t>(b.size()) ||
      (k == 1 && keep1.size() < stop))
    throw std::out_of_range("ARPA lines outside the table");
  if (k >= 2 && key_arr[k - 1].size() != p.size())
    throw std::invalid_argument("keys and probabilities differ in length");
  std::string out;
  {
    py::gil_scoped_release release;
    const float* pd = p.data();
    const float* bd = b.data();
    const bool* kd = keep1.data();
    std::vector<const int64_t*> kp;
    std::vector<int64_t> kn;
    for (auto& a : key_arr) {
      kp.push_back(a.data());
      kn.push_back(static_cast<int64_t>(a.size()));
    }
    out.reserve(static_cast<size_t>(stop - start) * (16 + 12 * k));
    char num[48];
    for (int64_t i = start; i < stop; ++i) {
      if (k == 1 && !kd[i]) continue;
      char* e = put_float(num, pd[i]);
      out.append(num, e - num);
      out.push_back('\t');
      int64_t idx = i;
      for (int j = k; j >= 2; --j) {
        int64_t key = kp[j - 1][idx];
        idx = key / V;
        if (key < 0 || idx >= kn[j - 2]) throw std::out_of_range("an n-gram key points outside");
        out.append(words[key % V]);
        out.push_back(' ');
      }
      out.append(words[idx]);
      if (with_backoff) {
        out.push_back('\t');
        e = put_float(num, bd[i]);
        out.append(num, e - num);
      }
      out.push_back('\n');
    }
  }
  return py::bytes(out);
}

}  // namespace ngram_count

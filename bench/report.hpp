// Small helpers shared by rev's benchmarks: JSON lines, the OS view of memory, and SVG plots.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rev::bench {

/// Resident set size of this process in bytes (Linux /proc), or 0 where unavailable.
inline std::size_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  std::size_t pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return pages_resident * 4096;
}

/// Samples the resident set size every millisecond while alive; peak() is the largest sample.
class rss_sampler {
 public:
  rss_sampler() : start_(resident_bytes()), peak_(start_) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        peak_ = std::max<std::size_t>(peak_, resident_bytes());
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  ~rss_sampler() { stop(); }
  void stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
      peak_ = std::max<std::size_t>(peak_, resident_bytes());
    }
  }
  std::size_t peak_above_start() {
    stop();
    return peak_ > start_ ? peak_ - start_ : 0;
  }

 private:
  std::size_t start_;
  std::size_t peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// One JSON object on one line, built field by field.
class json_line {
 public:
  json_line& operator()(const std::string& key, const std::string& value) { return raw(key, "\"" + value + "\""); }
  json_line& operator()(const std::string& key, const char* value) { return (*this)(key, std::string(value)); }
  template <class N>
  requires std::is_arithmetic_v<N> json_line& operator()(const std::string& key, N value) {
    std::ostringstream os;
    os << value;
    return raw(key, os.str());
  }
  std::string str() const { return "{" + body_ + "}"; }
  void print() const {
    std::printf("%s\n", str().c_str());
    std::fflush(stdout);
  }

 private:
  json_line& raw(const std::string& key, const std::string& value) {
    if (!body_.empty()) body_ += ", ";
    body_ += "\"" + key + "\": " + value;
    return *this;
  }
  std::string body_;
};

/// A line chart written as a standalone SVG file: one polyline per series, log2 x axis optional.
struct line_chart {
  std::string title, x_label, y_label;
  bool log2_x = false;
  std::map<std::string, std::vector<std::pair<double, double>>> series;

  void write(const std::string& path) const {
    const double W = 640, H = 400, left = 70, right = 160, top = 40, bottom = 50;
    double x0 = 1e300, x1 = -1e300, y1 = 0;
    auto fx = [&](double x) { return log2_x ? std::log2(x) : x; };
    for (auto& [name, pts] : series)
      for (auto& [x, y] : pts) {
        x0 = std::min(x0, fx(x));
        x1 = std::max(x1, fx(x));
        y1 = std::max(y1, y);
      }
    if (x1 <= x0) x1 = x0 + 1;
    y1 = y1 > 0 ? y1 * 1.1 : 1;
    auto px = [&](double x) { return left + (fx(x) - x0) / (x1 - x0) * (W - left - right); };
    auto py = [&](double y) { return H - bottom - y / y1 * (H - top - bottom); };
    const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
    std::ofstream out(path);
    out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
        << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
    out << "<text x='" << W / 2 << "' y='20' text-anchor='middle' font-size='14'>" << title << "</text>\n";
    out << "<line x1='" << left << "' y1='" << H - bottom << "' x2='" << W - right << "' y2='" << H - bottom
        << "' stroke='black'/>\n<line x1='" << left << "' y1='" << top << "' x2='" << left << "' y2='" << H - bottom
        << "' stroke='black'/>\n";
    for (int t = 0; t <= 4; ++t) {
      const double v = y1 * t / 4;
      out << "<text x='" << left - 6 << "' y='" << py(v) + 4 << "' text-anchor='end'>" << std::round(v) << "</text>\n";
      out << "<line x1='" << left << "' y1='" << py(v) << "' x2='" << W - right << "' y2='" << py(v)
          << "' stroke='#ddd'/>\n";
    }
    std::map<double, bool> ticks;
    for (auto& [name, pts] : series)
      for (auto& [x, y] : pts) ticks[x] = true;
    for (auto& [x, unused] : ticks)
      out << "<text x='" << px(x) << "' y='" << H - bottom + 16 << "' text-anchor='middle'>" << x << "</text>\n";
    out << "<text x='" << (left + W - right) / 2 << "' y='" << H - 10 << "' text-anchor='middle'>" << x_label
        << "</text>\n";
    out << "<text x='15' y='" << (top + H - bottom) / 2 << "' text-anchor='middle' transform='rotate(-90 15 "
        << (top + H - bottom) / 2 << ")'>" << y_label << "</text>\n";
    int k = 0;
    for (auto& [name, pts] : series) {
      const char* c = colours[k % 6];
      out << "<polyline fill='none' stroke='" << c << "' stroke-width='2' points='";
      for (auto& [x, y] : pts) out << px(x) << "," << py(y) << " ";
      out << "'/>\n";
      for (auto& [x, y] : pts) out << "<circle cx='" << px(x) << "' cy='" << py(y) << "' r='3' fill='" << c << "'/>\n";
      out << "<text x='" << W - right + 10 << "' y='" << top + 20 + 18 * k << "' fill='" << c << "'>" << name
          << "</text>\n";
      ++k;
    }
    out << "</svg>\n";
  }
};

}  // namespace rev::bench

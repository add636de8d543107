// Stop strings over streamed text: holds back text that could still turn into a stop string (and an
// incomplete trailing UTF-8 character), and cuts the text where a stop string begins.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace zebra {

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops);
  // `text` is the whole generated text so far (each call extends the previous one). Returns the newly
  // final text; after a stop string was found, stopped() is true and the text before it has been returned.
  std::string update(const std::string& text);
  // The rest of the text once generation ended without a stop string.
  std::string flush(const std::string& text);
  bool stopped() const { return stopped_; }
  std::size_t emitted() const { return emitted_; }

 private:
  std::vector<std::string> stops_;
  std::size_t longest_ = 0;
  std::size_t emitted_ = 0;
  bool stopped_ = false;
};

}  // namespace zebra

// Command-line options of the siam subcommands: `--name value` or `--name=value`, every name checked against
// the subcommand's list, values converted with errors that name the option (main() adds the subcommand).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace siam::app {

class Options {
 public:
  // Parses argv[first..]; `help` is true when --help or -h was given (nothing else is checked then).
  Options(int argc, char** argv, int first, const std::vector<std::string>& known, const char* usage);
  bool help() const { return help_; }
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  std::string str(const std::string& key, const std::string& def = "") const;
  std::string required(const std::string& key, const std::string& what) const;
  int64_t integer(const std::string& key, int64_t def) const;  // non-negative
  double number(const std::string& key, double def) const;
  // Every value given for a repeatable option (--set a=1 --set b=2), in order.
  std::vector<std::string> all(const std::string& key) const;

 private:
  const char* usage_;
  bool help_ = false;
  std::map<std::string, std::string> kv_;
  std::map<std::string, std::vector<std::string>> multi_;
};

}  // namespace siam::app

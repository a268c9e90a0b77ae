#include "langfuse/json_scan.h"

#include <doctest/doctest.h>

#include <string>

namespace lfh::json_scan {
namespace {

TEST_CASE("scan_children finds the members of an object with their text and depth") {
  Document doc;
  std::string error;
  REQUIRE(scan_children(R"( {"data": [1, {"a": [2]}], "meta" : {"cursor":"x"}, "n": -1.5e3} )", 10,
                        doc, error));
  CHECK(doc.root_is_object);
  REQUIRE(doc.children.size() == 3);
  CHECK(doc.children[0].key == "data");
  CHECK(doc.children[0].value == R"([1, {"a": [2]}])");
  CHECK(doc.children[0].depth == 3);
  CHECK(doc.children[1].key == "meta");
  CHECK(doc.children[1].value == R"({"cursor":"x"})");
  CHECK(doc.children[1].depth == 1);
  CHECK(doc.children[2].value == "-1.5e3");
  CHECK(doc.children[2].depth == 0);
}

TEST_CASE("scan_children finds the elements of an array") {
  Document doc;
  std::string error;
  REQUIRE(scan_children(R"([{"id":"a"}, "s\"}]", true, null, [], {}])", 10, doc, error));
  CHECK_FALSE(doc.root_is_object);
  REQUIRE(doc.children.size() == 6);
  CHECK(doc.children[0].value == R"({"id":"a"})");
  CHECK(doc.children[1].value == R"("s\"}]")");
  CHECK(doc.children[2].value == "true");
  CHECK(doc.children[4].value == "[]");
  CHECK(doc.children[4].depth == 1);
  CHECK(doc.children[0].key.empty());
}

TEST_CASE("scan_children reports keys with escapes") {
  Document doc;
  std::string error;
  REQUIRE(scan_children(R"({"d\u0061ta": 1})", 10, doc, error));
  REQUIRE(doc.children.size() == 1);
  CHECK(doc.children[0].key_has_escapes);
  CHECK(doc.children[0].key == "d\\u0061ta");
}

TEST_CASE("scan_children rejects what is not one JSON object or array") {
  const char* bad[] = {
      "",
      "   ",
      "42",
      "\"text\"",
      "null",
      "{",
      "{\"a\":1",
      "{\"a\":1,}",
      "[1,]",
      "[1 2]",
      "{\"a\" 1}",
      "{a:1}",
      "{\"a\":tru}",
      "{\"a\":01}",
      "{\"a\":1.}",
      "{\"a\":-}",
      "{\"a\":1e}",
      "{\"a\":\"x\\q\"}",
      "{\"a\":\"\\u12G4\"}",
      "{\"a\":\"unterminated}",
      "{\"a\":\"tab\there\"}",
      "[1]]",
      "{\"a\":[1}",
      "{} {}",
      "<html>502 Bad Gateway</html>",
  };
  for (const char* text : bad) {
    Document doc;
    std::string error;
    CAPTURE(text);
    CHECK_FALSE(scan_children(text, 10, doc, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("scan_children accepts bytes that are not UTF-8 and numbers beyond a double") {
  Document doc;
  std::string error;
  CHECK(scan_children("[\"\xff\xfe\", 1e400, 123456789012345678901234567890]", 10, doc, error));
  CHECK(doc.children.size() == 3);
}

TEST_CASE("scan_children handles nesting far deeper than any recursion could") {
  const std::size_t depth = 200'000;
  std::string text = "[" + std::string(depth, '[') + std::string(depth, ']') + ",1]";
  Document doc;
  std::string error;
  REQUIRE(scan_children(text, 10, doc, error));
  REQUIRE(doc.children.size() == 2);
  CHECK(doc.children[0].depth == depth);

  std::string unbalanced = "[" + std::string(depth, '[');
  CHECK_FALSE(scan_children(unbalanced, 10, doc, error));
}

TEST_CASE("scan_children refuses more children than allowed") {
  Document doc;
  std::string error;
  CHECK(scan_children("[1,2,3]", 3, doc, error));
  CHECK_FALSE(scan_children("[1,2,3,4]", 3, doc, error));
  CHECK(error.find("too many") != std::string::npos);
}

TEST_CASE("decode_string decodes every escape and repairs broken Unicode") {
  CHECK(decode_string(R"("")") == "");
  CHECK(decode_string(R"("plain text")") == "plain text");
  CHECK(decode_string(R"("q\"b\\s\/b\bf\fn\nr\rt\t")") == "q\"b\\s/b\bf\fn\nr\rt\t");
  CHECK(decode_string(R"("\u0041\u00e9\u20AC\ud83d\ude00")") ==
        "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  CHECK(decode_string(R"("\u0000")") == std::string(1, '\0'));
  CHECK(decode_string(R"("cut \ud83d")") == "cut \xEF\xBF\xBD");
  CHECK(decode_string(R"("\ude00\ud83d\ud83d\ude00")") ==
        "\xEF\xBF\xBD\xEF\xBF\xBD\xF0\x9F\x98\x80");
  CHECK(decode_string("\"caf\xC3\xA9 \xFF!\"") == "caf\xC3\xA9 \xEF\xBF\xBD!");
  CHECK(decode_string("\"\xE2\x82\"") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // cut before the quote
}

TEST_CASE("is_valid_utf8") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK_FALSE(is_valid_utf8("\xC3"));              // truncated
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // beyond U+10FFFF
  CHECK_FALSE(is_valid_utf8("\\\xFF"));            // even right after a backslash
}

TEST_CASE("has_broken_unicode and repair_unicode") {
  CHECK_FALSE(has_broken_unicode(R"({"a":"plain ascii"})"));
  CHECK_FALSE(has_broken_unicode("{\"a\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\"}"));
  CHECK_FALSE(has_broken_unicode(R"({"a":"\ud83d\ude00 pair"})"));
  CHECK_FALSE(has_broken_unicode(R"({"a":"\\ud800 is an escaped backslash"})"));

  CHECK(has_broken_unicode("{\"a\":\"bad \xff byte\"}"));
  CHECK(repair_unicode("{\"a\":\"bad \xff byte\"}") == "{\"a\":\"bad \xEF\xBF\xBD byte\"}");
  CHECK(repair_unicode("\"\xC3\"") == "\"\xEF\xBF\xBD\"");  // truncated sequence
  CHECK(repair_unicode("\"\xED\xA0\x80\"") ==               // UTF-8 encoded surrogate
        "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  CHECK(has_broken_unicode(R"({"a":"cut \ud83d"})"));
  CHECK(repair_unicode(R"({"a":"cut \ud83d"})") == R"({"a":"cut \uFFFD"})");
  CHECK(repair_unicode(R"(["\udc00x"])") == R"(["\uFFFDx"])");
  CHECK(repair_unicode(R"(["\ud83d\ude00"])") == R"(["\ud83d\ude00"])");
}

}  // namespace
}  // namespace lfh::json_scan

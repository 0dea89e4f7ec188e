// Checkpoints: round trip, metadata, atomic write, and a clear error for every kind of bad file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "fixture_util.h"
#include "nn/checkpoint.h"

using namespace harvit;
namespace fs = std::filesystem;

namespace {

nn::VitConfig small_cfg() {
  nn::VitConfig c;
  c.T = 20; c.M = 2; c.C = 3; c.P = 4; c.D = 8; c.H = 2; c.A = 3; c.L = 2; c.hidden = 10;
  return c;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("harvit_ckpt_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_small(const std::string& name) {
    nn::Vit m(small_cfg());
    test::fixture_params(m, 3);
    const std::string p = path(name);
    nn::save_checkpoint(p, m);
    return p;
  }
  static std::string read_all(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void write_all(const std::string& p, const std::string& s) {
    std::ofstream(p, std::ios::binary) << s;
  }
  // Expect load_checkpoint(p) to throw with a message containing every `needle`.
  static void expect_error(const std::string& p, std::initializer_list<std::string> needles) {
    try {
      nn::load_checkpoint(p);
      FAIL() << "expected an error loading " << p;
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << "error does not name the file: " << msg;
      for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
    }
  }
  fs::path dir_;
};

}  // namespace

TEST_F(CheckpointTest, RoundTripIsExactAndCarriesMetadata) {
  nn::Vit m(small_cfg());
  test::fixture_params(m, 5);
  nn::CheckpointMeta meta;
  meta.class_names = {"Walking", "Jogging", "Sitting"};
  meta.normalization = {{"mean", {0.1, 0.2}}, {"std", {1.5, 2.5}}};
  meta.extra = {{"epoch", 7}};
  nn::save_checkpoint(path("a.safetensors"), m, meta);
  auto loaded = nn::load_checkpoint(path("a.safetensors"));
  EXPECT_EQ(loaded.model->config_json(), small_cfg().to_json());
  ASSERT_EQ(loaded.model->params().count(), m.params().count());
  for (int64_t i = 0; i < m.params().count(); ++i)
    ASSERT_EQ(loaded.model->params().values()[i], m.params().values()[i]) << i;
  EXPECT_EQ(loaded.meta.class_names, meta.class_names);
  EXPECT_EQ(loaded.meta.normalization, meta.normalization);
  EXPECT_EQ(loaded.meta.extra["epoch"], 7);
  // Tensor names are the PyTorch state_dict names, in state_dict order.
  auto f = SafetensorsFile::load(path("a.safetensors"));
  auto names = f.names();
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(names[0], "position_embedding");
  EXPECT_EQ(names[1], "patch_conv.weight");
  EXPECT_EQ(names[3], "msa_layer.0.query.weight");
  EXPECT_EQ(names.back(), "dense_tower.3.bias");
  // No temporary file is left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file(), (void)e;
  EXPECT_EQ(files, 1);
}

TEST_F(CheckpointTest, MissingFile) { expect_error(path("nope.safetensors"), {"cannot open"}); }

TEST_F(CheckpointTest, EmptyAndTooShort) {
  write_all(path("e.safetensors"), "");
  expect_error(path("e.safetensors"), {"shorter than the 8-byte header"});
}

TEST_F(CheckpointTest, TruncatedData) {
  const std::string p = write_small("t.safetensors");
  std::string s = read_all(p);
  write_all(p, s.substr(0, s.size() - 100));
  expect_error(p, {"truncated"});
}

TEST_F(CheckpointTest, TruncatedHeader) {
  const std::string p = write_small("h.safetensors");
  write_all(p, read_all(p).substr(0, 50));
  expect_error(p, {"header length", "truncated"});
}

TEST_F(CheckpointTest, BadJsonHeader) {
  const std::string p = path("j.safetensors");
  std::string hdr = "{not json";
  std::string s(8, '\0');
  s[0] = static_cast<char>(hdr.size());
  write_all(p, s + hdr);
  expect_error(p, {"not valid JSON"});
}

TEST_F(CheckpointTest, HugeHeaderLength) {
  const std::string p = path("big.safetensors");
  write_all(p, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}");
  expect_error(p, {"100 MB"});
}

TEST_F(CheckpointTest, WrongShape) {
  nn::Vit m(small_cfg());
  SafetensorsWriter w;
  for (const auto& p : m.params().infos()) {
    Shape s = p.shape;
    if (p.name == "msa_layer.1.key.weight") s = {s[1], s[0]};  // transposed
    w.add_f32(p.name, s, m.params().values() + p.offset);
  }
  w.set_metadata("config", small_cfg().to_json().dump());
  w.write(path("s.safetensors"));
  expect_error(path("s.safetensors"), {"msa_layer.1.key.weight", "[8, 6]", "[6, 8]"});
}

TEST_F(CheckpointTest, UnknownAndMissingNames) {
  nn::Vit m(small_cfg());
  SafetensorsWriter w;
  for (const auto& p : m.params().infos()) w.add_f32(p.name, p.shape, m.params().values() + p.offset);
  float extra = 1;
  w.add_f32("classifier.weight", {1}, &extra);
  w.set_metadata("config", small_cfg().to_json().dump());
  w.write(path("u.safetensors"));
  expect_error(path("u.safetensors"), {"does not have", "classifier.weight"});

  SafetensorsWriter w2;
  for (const auto& p : m.params().infos())
    if (p.name != "dense_tower.1.bias") w2.add_f32(p.name, p.shape, m.params().values() + p.offset);
  w2.set_metadata("config", small_cfg().to_json().dump());
  w2.write(path("m.safetensors"));
  expect_error(path("m.safetensors"), {"dense_tower.1.bias", "missing"});
}

TEST_F(CheckpointTest, MissingOrBadConfig) {
  nn::Vit m(small_cfg());
  SafetensorsWriter w;
  for (const auto& p : m.params().infos()) w.add_f32(p.name, p.shape, m.params().values() + p.offset);
  w.write(path("c.safetensors"));
  expect_error(path("c.safetensors"), {"no \"config\"", "torch_to_safetensors"});
  w.set_metadata("config", R"({"T": 20})");
  w.write(path("c2.safetensors"));
  expect_error(path("c2.safetensors"), {"missing \"M\""});
  w.set_metadata("config", R"({"T":2,"M":2,"C":3,"P":4,"D":8,"H":2,"A":3,"L":2,"hidden":10})");
  w.write(path("c3.safetensors"));
  expect_error(path("c3.safetensors"), {"shorter than one patch"});
}

TEST_F(CheckpointTest, OffsetsInconsistentWithShape) {
  const std::string p = path("o.safetensors");
  std::string hdr = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})";
  std::string s(8, '\0');
  s[0] = static_cast<char>(hdr.size());
  write_all(p, s + hdr + std::string(8, '\0'));
  try {
    SafetensorsFile::load(p);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("needs 16 bytes"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, UnwritableDestination) {
  nn::Vit m(small_cfg());
  { std::ofstream(path("a_file")) << "x"; }  // a folder cannot be made where a file is
  try {
    nn::save_checkpoint(path("a_file/x.safetensors"), m);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("a_file/x.safetensors"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, MissingFoldersAreCreated) {
  nn::Vit m(small_cfg());
  nn::save_checkpoint(path("new/sub/x.safetensors"), m);
  EXPECT_NO_THROW(nn::load_checkpoint(path("new/sub/x.safetensors")));
}

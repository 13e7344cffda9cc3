#include "model.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "json.h"

namespace based {

static bool contains(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }

static bool inList(const Json* list, int i) {
  if (!list || list->kind != Json::Array) return false;
  for (auto& v : list->arr)
    if (v.kind == Json::Number && int(v.num) == i) return true;
  return false;
}

ModelConfig parseConfig(const std::string& text) {
  Json c;
  try {
    c = parseJson(text.data(), text.size());
  } catch (const std::exception& e) {
    throw EngineError("config_invalid", std::string("config.json: ") + e.what());
  }
  if (c.kind != Json::Object) throw EngineError("config_invalid", "config.json is not an object");
  ModelConfig m;
  m.dModel = int(c.numberOr("n_embd", c.numberOr("hidden_size", 0)));
  m.nLayer = int(c.numberOr("n_layer", c.numberOr("num_hidden_layers", 0)));
  if (m.dModel <= 0 || m.nLayer <= 0) throw EngineError("config_invalid", "config.json lacks n_embd or n_layer");
  int nHead = int(c.numberOr("n_head", c.numberOr("num_attention_heads", 16)));
  m.vocab = int(c.numberOr("vocab_size", 50257));
  int pad = std::max(1, int(c.numberOr("pad_vocab_size_multiple", 1)));
  m.vocabPadded = (m.vocab + pad - 1) / pad * pad;
  m.normEps = float(c.numberOr("layer_norm_epsilon", 1e-5));
  std::string act = c.stringOr("activation_function", "swiglu");
  if (act != "swiglu")
    throw EngineError("config_unsupported", "activation_function " + act + " is not supported (only swiglu)");
  if (!c.boolOr("rms_norm", false)) throw EngineError("config_unsupported", "only RMSNorm checkpoints are supported");
  if (c.numberOr("max_position_embeddings", 0) > 0)
    throw EngineError("config_unsupported", "learned position embeddings are not supported");
  const Json* inner = c.get("n_inner");
  int hidden = inner && inner->kind == Json::Number ? int(inner->num) : int(8 * m.dModel / 3);
  m.mlpHidden = (hidden + 127) / 128 * 128;  // the gated MLP rounds its width up to a multiple of 128

  const Json* altLayers = c.get("alt_mixer_layers");
  const Json* alt2Layers = c.get("alt_mixer_2_layers");
  for (int i = 0; i < m.nLayer; ++i) {
    const Json* mix = c.get("mixer");
    if (inList(alt2Layers, i)) mix = c.get("alt_mixer_2");
    else if (inList(altLayers, i)) mix = c.get("alt_mixer");
    if (!mix || mix->kind != Json::Object)
      throw EngineError("config_unsupported", "layer " + std::to_string(i) + " uses full attention, which is not supported");
    std::string target = mix->stringOr("_target_", "");
    LayerConfig L;
    if (contains(target, "LinearAttention")) {
      L.kind = contains(target, "Prefix") ? MixerKind::PrefixLinearAttention : MixerKind::LinearAttention;
      L.laFeatureDim = int(mix->numberOr("feature_dim", 16));
      L.laHeads = int(mix->numberOr("num_heads", 16));
      int kvHeads = int(mix->numberOr("num_key_value_heads", L.laHeads));
      if (kvHeads != L.laHeads)
        throw EngineError("config_unsupported", "linear attention with grouped key/value heads is not supported");
      L.laHeadDim = int(mix->numberOr("head_dim", m.dModel / L.laHeads));
      L.laEps = float(mix->numberOr("eps", 1e-12));
      std::string fname = mix->stringOr("feature_name", "taylor_exp");
      const Json* fmap = mix->get("feature_map");
      if (fmap && !contains(fmap->stringOr("_target_", "TaylorExp"), "TaylorExp")) fname = "other";
      if (fname != "taylor_exp") throw EngineError("config_unsupported", "only the Taylor feature map is supported");
      if (mix->boolOr("use_rotary_apply", false) || mix->boolOr("initial_conv", false) ||
          mix->boolOr("use_decay_proj", false) || mix->boolOr("use_output_gating", false))
        throw EngineError("config_unsupported", "linear attention options beyond the released BASED ones are not supported");
      L.laScaleDim = int(mix->numberOr("scale_dim", L.laFeatureDim));
      if (L.laFeatureDim < 1 || taylorDim(L.laFeatureDim) > 1024)
        throw EngineError("config_unsupported", "linear attention feature_dim must be between 1 and 43");
      if (L.kind == MixerKind::PrefixLinearAttention) {
        L.encLength = int(mix->numberOr("enc_length", c.numberOr("enc_length", 0)));
        if (L.encLength <= 0) throw EngineError("config_invalid", "JRT-RNN config lacks enc_length");
      }
    } else if (contains(target, "Slid")) {
      L.kind = MixerKind::SlidingWindow;
      L.swHeads = int(mix->numberOr("num_heads", nHead));
      L.swHeadDim = m.dModel / L.swHeads;
      int window = int(mix->numberOr("window_size", 128));
      L.windowLeft = window / 2;  // the released code passes (window_size // 2, 0) to FlashAttention
      L.rotaryDim = int(c.numberOr("rotary_emb_fraction", 0.0) * L.swHeadDim);
      L.rotaryBase = float(c.numberOr("rotary_emb_base", 10000.0));
      if (c.boolOr("rotary_emb_interleaved", false))
        throw EngineError("config_unsupported", "interleaved rotary embeddings are not supported");
      if (c.get("n_head_kv") && c.get("n_head_kv")->kind == Json::Number && int(c.numberOr("n_head_kv", 0)) != L.swHeads)
        throw EngineError("config_unsupported", "grouped-query sliding attention is not supported");
      L.softmaxScale = c.boolOr("scale_attn_weights", true) ? 1.f / std::sqrt(float(L.swHeadDim)) : 1.f;
      if (c.boolOr("scale_attn_by_inverse_layer_idx", false)) L.softmaxScale /= float(i + 1);
    } else if (contains(target, "BaseConv")) {
      L.kind = MixerKind::BaseConv;
      int expand = int(mix->numberOr("expand_proj", 2));
      L.convInner = expand * m.dModel / 2;
      const Json* ks = mix->get("kernel_size");
      if (!ks) ks = mix->get("kernel_sizes");
      if (ks && ks->kind == Json::Number) L.convKernel = int(ks->num);
      else if (ks && ks->kind == Json::Array && !ks->arr.empty()) L.convKernel = int(ks->arr[0].num);
      if (L.convKernel < 1) throw EngineError("config_invalid", "BaseConv kernel size must be positive");
    } else {
      throw EngineError("config_unsupported", "mixer " + target + " at layer " + std::to_string(i) + " is not supported");
    }
    m.layers.push_back(L);
  }
  return m;
}

namespace {

struct Loader {
  Model& m;
  const SafetensorsDir& st;

  const float* tensor(const std::string& name, std::vector<int64_t> shape, bool optional = false) {
    const TensorView* t = st.find(name);
    if (!t) {
      if (optional) return nullptr;
      throw EngineError("missing_tensor", "checkpoint has no tensor " + name);
    }
    // a depthwise conv weight is stored [C, 1, K]; accept any shape with the same numel when dims of 1 are dropped
    std::vector<int64_t> got;
    for (auto s : t->shape)
      if (s != 1) got.push_back(s);
    std::vector<int64_t> want;
    for (auto s : shape)
      if (s != 1) want.push_back(s);
    if (got != want) {
      std::ostringstream o;
      o << "tensor " << name << " has shape [";
      for (size_t i = 0; i < t->shape.size(); ++i) o << (i ? ", " : "") << t->shape[i];
      o << "] but the config implies [";
      for (size_t i = 0; i < shape.size(); ++i) o << (i ? ", " : "") << shape[i];
      o << "]";
      throw EngineError("shape_mismatch", o.str());
    }
    m.weightBytes += size_t(t->numel()) * 4;
    if (t->dtype == DType::F32 && (reinterpret_cast<uintptr_t>(t->data) % 4) == 0)
      return reinterpret_cast<const float*>(t->data);
    std::unique_ptr<float[]> buf(new float[t->numel()]);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(t->data);
    for (int64_t i = 0; i < t->numel(); ++i) {
      if (t->dtype == DType::F32) std::memcpy(&buf[i], t->data + 4 * i, 4);
      else {
        uint16_t v;
        std::memcpy(&v, h + i, 2);
        buf[i] = t->dtype == DType::F16 ? halfToFloat(v) : bf16ToFloat(v);
      }
    }
    m.owned.push_back(std::move(buf));
    return m.owned.back().get();
  }

  Linear linear(const std::string& prefix, int out, int in) {
    Linear l;
    l.out = out, l.in = in;
    l.w = tensor(prefix + ".weight", {out, in});
    l.b = tensor(prefix + ".bias", {out}, true);
    return l;
  }
};

}  // namespace

static std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw EngineError("config_missing", "cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::unique_ptr<Model> loadModel(const std::string& dir) {
  auto m = std::make_unique<Model>();
  m->cfg = parseConfig(readFile(dir + "/config.json"));
  m->files = std::make_unique<SafetensorsDir>(dir);
  Loader ld{*m, *m->files};
  const ModelConfig& c = m->cfg;
  int d = c.dModel;
  m->embed = ld.tensor("transformer.embeddings.word_embeddings.weight", {c.vocabPadded, d});
  m->normF = ld.tensor("transformer.ln_f.weight", {d});
  m->lmHead = ld.tensor("lm_head.weight", {c.vocabPadded, d}, true);
  if (!m->lmHead) m->lmHead = m->embed;
  else if (m->lmHead != m->embed && std::memcmp(m->lmHead, m->embed, size_t(c.vocabPadded) * d * 4) == 0) {
    m->lmHead = m->embed;  // tied: read once per step, count once
    m->weightBytes -= size_t(c.vocabPadded) * d * 4;
  }
  // the checkpoint's MLP width wins over the config's n_inner rounding
  const TensorView* fc1 = m->files->find("transformer.layers.0.mlp.fc1.weight");
  if (fc1 && fc1->shape.size() == 2) m->cfg.mlpHidden = int(fc1->shape[0] / 2);
  for (int i = 0; i < c.nLayer; ++i) {
    std::string p = "transformer.layers." + std::to_string(i) + ".";
    const LayerConfig& L = c.layers[i];
    LayerWeights w;
    w.norm1 = ld.tensor(p + "norm1.weight", {d});
    w.norm2 = ld.tensor(p + "norm2.weight", {d});
    w.fc1 = ld.linear(p + "mlp.fc1", 2 * c.mlpHidden, d);
    w.fc2 = ld.linear(p + "mlp.fc2", d, c.mlpHidden);
    std::string mx = p + "mixer.";
    switch (L.kind) {
      case MixerKind::BaseConv: {
        w.inProj = ld.linear(mx + "in_proj", 2 * L.convInner, d);
        w.outProj = ld.linear(mx + "out_proj", d, L.convInner);
        // releases name the short convolution either conv or conv1
        std::string cv = m->files->find(mx + "conv1.conv.weight") ? mx + "conv1.conv." : mx + "conv.conv.";
        w.convW = ld.tensor(cv + "weight", {L.convInner, 1, L.convKernel});
        w.convB = ld.tensor(cv + "bias", {L.convInner}, true);
        break;
      }
      case MixerKind::LinearAttention:
      case MixerKind::PrefixLinearAttention: {
        int fq = L.laHeads * L.laFeatureDim, fv = L.laHeads * L.laHeadDim;
        w.projQ = ld.linear(mx + "proj_q", fq, d);
        w.projK = ld.linear(mx + "proj_k", fq, d);
        w.projV = ld.linear(mx + "proj_v", fv, d);
        w.outProj = ld.linear(mx + "out_proj", d, fv);
        if (L.kind == MixerKind::PrefixLinearAttention) {
          w.projKEnc = ld.linear(mx + "proj_k_enc", fq, d);
          w.projVEnc = ld.linear(mx + "proj_v_enc", fv, d);
        }
        break;
      }
      case MixerKind::SlidingWindow:
        w.wqkv = ld.linear(mx + "Wqkv", 3 * d, d);
        w.outProj = ld.linear(mx + "out_proj", d, d);
        break;
    }
    m->layers.push_back(w);
  }
  return m;
}

std::unique_ptr<Model> randomModel(const ModelConfig& cfg, uint64_t seed, float stdev) {
  auto m = std::make_unique<Model>();
  m->cfg = cfg;
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&]() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  };
  // uniform with the requested standard deviation: throughput does not care about the distribution's shape,
  // and a 360M-parameter model is drawn in a second instead of half a minute of Box-Muller
  const float half = stdev * std::sqrt(3.f);
  auto alloc = [&](size_t n, bool ones) {
    std::unique_ptr<float[]> b(new float[n]);
    for (size_t i = 0; i < n; ++i) b[i] = ones ? 1.f : half * (float(next() >> 40) * (2.f / 16777216.f) - 1.f);
    m->weightBytes += n * 4;
    m->owned.push_back(std::move(b));
    return (const float*)m->owned.back().get();
  };
  auto lin = [&](int out, int in) {
    Linear l;
    l.out = out, l.in = in;
    l.w = alloc(size_t(out) * in, false);
    return l;
  };
  int d = cfg.dModel;
  m->embed = alloc(size_t(cfg.vocabPadded) * d, false);
  m->lmHead = m->embed;
  m->normF = alloc(d, true);
  for (auto& L : cfg.layers) {
    LayerWeights w;
    w.norm1 = alloc(d, true);
    w.norm2 = alloc(d, true);
    w.fc1 = lin(2 * cfg.mlpHidden, d);
    w.fc2 = lin(d, cfg.mlpHidden);
    switch (L.kind) {
      case MixerKind::BaseConv:
        w.inProj = lin(2 * L.convInner, d);
        w.outProj = lin(d, L.convInner);
        w.convW = alloc(size_t(L.convInner) * L.convKernel, false);
        break;
      case MixerKind::LinearAttention:
      case MixerKind::PrefixLinearAttention:
        w.projQ = lin(L.laHeads * L.laFeatureDim, d);
        w.projK = lin(L.laHeads * L.laFeatureDim, d);
        w.projV = lin(L.laHeads * L.laHeadDim, d);
        w.outProj = lin(d, L.laHeads * L.laHeadDim);
        if (L.kind == MixerKind::PrefixLinearAttention) {
          w.projKEnc = lin(L.laHeads * L.laFeatureDim, d);
          w.projVEnc = lin(L.laHeads * L.laHeadDim, d);
        }
        break;
      case MixerKind::SlidingWindow:
        w.wqkv = lin(3 * d, d);
        w.outProj = lin(d, d);
        break;
    }
    m->layers.push_back(w);
  }
  return m;
}

std::unique_ptr<SequenceState> newState(const ModelConfig& cfg) {
  auto s = std::make_unique<SequenceState>();
  for (auto& L : cfg.layers) {
    LayerState ls;
    switch (L.kind) {
      case MixerKind::BaseConv:
        ls.conv.assign(size_t(L.convKernel - 1) * L.convInner, 0.f);
        break;
      case MixerKind::LinearAttention:
      case MixerKind::PrefixLinearAttention: {
        int F = taylorDim(L.laFeatureDim);
        ls.kv.assign(size_t(L.laHeads) * F * L.laHeadDim, 0.f);
        ls.ksum.assign(size_t(L.laHeads) * F, 0.f);
        break;
      }
      case MixerKind::SlidingWindow:
        ls.keys.assign(size_t(L.windowLeft + 1) * L.swHeads * L.swHeadDim, 0.f);
        ls.values.assign(ls.keys.size(), 0.f);
        break;
    }
    s->layers.push_back(std::move(ls));
  }
  return s;
}

size_t stateBytes(const ModelConfig& cfg) {
  auto s = newState(cfg);
  size_t n = 0;
  for (auto& l : s->layers) n += (l.kv.size() + l.ksum.size() + l.conv.size() + l.keys.size() + l.values.size()) * 4;
  return n;
}

static const uint32_t kStateMagic = 0x42534132;  // "BSA2"

// Two models with equal state sizes (BASED vs JRT-RNN of one shape) must still refuse each other's states.
static uint64_t configFingerprint(const ModelConfig& c) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](int64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ uint8_t(v >> (8 * i))) * 1099511628211ull;
  };
  mix(c.dModel), mix(c.nLayer), mix(c.vocabPadded), mix(c.mlpHidden);
  for (auto& L : c.layers) {
    mix(int(L.kind)), mix(L.laHeads), mix(L.laFeatureDim), mix(L.laHeadDim), mix(L.encLength);
    mix(L.swHeads), mix(L.windowLeft), mix(L.rotaryDim), mix(L.convInner), mix(L.convKernel);
  }
  return h;
}

std::vector<uint8_t> serializeState(const ModelConfig& cfg, const SequenceState& s) {
  std::vector<uint8_t> out;
  auto put = [&](const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  };
  uint32_t layers = uint32_t(cfg.nLayer);
  uint64_t fp = configFingerprint(cfg);
  put(&kStateMagic, 4);
  put(&layers, 4);
  put(&fp, 8);
  put(&s.pos, 8);
  for (auto& l : s.layers)
    for (auto* v : {&l.kv, &l.ksum, &l.conv, &l.keys, &l.values}) put(v->data(), v->size() * 4);
  return out;
}

std::unique_ptr<SequenceState> deserializeState(const ModelConfig& cfg, const uint8_t* data, size_t n) {
  auto s = newState(cfg);
  size_t need = 24;
  for (auto& l : s->layers) need += (l.kv.size() + l.ksum.size() + l.conv.size() + l.keys.size() + l.values.size()) * 4;
  uint32_t magic = 0, layers = 0;
  uint64_t fp = 0;
  if (n >= 16) std::memcpy(&magic, data, 4), std::memcpy(&layers, data + 4, 4), std::memcpy(&fp, data + 8, 8);
  if (n != need || magic != kStateMagic || layers != uint32_t(cfg.nLayer) || fp != configFingerprint(cfg))
    throw EngineError("state_mismatch", "saved state does not belong to this model");
  std::memcpy(&s->pos, data + 16, 8);
  size_t off = 24;
  for (auto& l : s->layers)
    for (auto* v : {&l.kv, &l.ksum, &l.conv, &l.keys, &l.values}) {
      std::memcpy(v->data(), data + off, v->size() * 4);
      off += v->size() * 4;
    }
  return s;
}

}  // namespace based

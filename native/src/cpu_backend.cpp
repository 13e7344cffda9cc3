// CPU forward pass: token-parallel projections over the whole batch, per-sequence token mixing.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend.h"
#include "cpu_kernels.h"
#include "errors.h"

namespace based {
namespace {

constexpr int kChunk = 64;  // linear attention chunk: quadratic inside, state carried across

inline float silu(float x) { return x / (1.f + std::exp(-x)); }

void rmsnorm(ThreadPool& pool, const float* X, int T, int d, const float* w, float eps, float* Y) {
  pool.parallelFor(T, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* x = X + t * d;
      double ss = 0;
      for (int i = 0; i < d; ++i) ss += double(x[i]) * x[i];
      float r = float(1.0 / std::sqrt(ss / d + eps));
      for (int i = 0; i < d; ++i) Y[t * d + i] = x[i] * r * w[i];
    }
  });
}

// Compact Taylor features: [1, x/d^(1/4), x_i^2/(sqrt2 sqrt d), x_i x_j/sqrt d for i<j]. Their dot products equal
// those of the released full map [1, x/d^(1/4), vec(x x^T)/(sqrt2 sqrt d)]: 1 + q.k/sqrt d + (q.k)^2/(2d).
inline void taylor(const float* x, int f, float rrd, float rd, float* out) {
  out[0] = 1.f;
  for (int i = 0; i < f; ++i) out[1 + i] = x[i] / rrd;
  int o = 1 + f;
  const float diag = 1.f / (std::sqrt(2.f) * rd), off = 1.f / rd;
  for (int i = 0; i < f; ++i) {
    out[o++] = x[i] * x[i] * diag;
    for (int j = i + 1; j < f; ++j) out[o++] = x[i] * x[j] * off;
  }
}

struct SeqSpan {
  int offset, n;
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}
  const char* name() const override { return cpuHasAvx2Fma() ? "cpu-avx2" : "cpu"; }

  void forward(const Model& m, std::vector<SeqRequest>& batch, bool allLogits, std::vector<float>& logits) override {
    const ModelConfig& c = m.cfg;
    const int d = c.dModel;
    std::vector<SeqSpan> spans;
    int T = 0;
    for (auto& r : batch) {
      if (r.n <= 0) throw EngineError("empty_input", "each sequence needs at least one token");
      spans.push_back({T, r.n});
      T += r.n;
    }
    std::vector<float> X(size_t(T) * d), H(size_t(T) * d), M(size_t(T) * d);
    for (size_t s = 0; s < batch.size(); ++s)
      for (int t = 0; t < batch[s].n; ++t) {
        int tok = batch[s].tokens[t];
        if (tok < 0 || tok >= c.vocabPadded) throw EngineError("token_out_of_range", "token id " + std::to_string(tok) + " is outside the vocabulary");
        std::memcpy(&X[size_t(spans[s].offset + t) * d], m.embed + size_t(tok) * d, size_t(d) * 4);
      }
    std::vector<float> G, A;
    for (int li = 0; li < c.nLayer; ++li) {
      const LayerConfig& L = c.layers[li];
      const LayerWeights& w = m.layers[li];
      rmsnorm(pool_, X.data(), T, d, w.norm1, c.normEps, H.data());
      switch (L.kind) {
        case MixerKind::BaseConv: baseConv(L, w, li, batch, spans, H.data(), T, d, M.data()); break;
        case MixerKind::LinearAttention:
        case MixerKind::PrefixLinearAttention: linearAttention(L, w, li, batch, spans, H.data(), T, d, M.data()); break;
        case MixerKind::SlidingWindow: slidingWindow(L, w, li, batch, spans, H.data(), T, d, M.data()); break;
      }
      for (size_t i = 0; i < X.size(); ++i) X[i] += M[i];
      rmsnorm(pool_, X.data(), T, d, w.norm2, c.normEps, H.data());
      const int hid = c.mlpHidden;
      G.resize(size_t(T) * 2 * hid);
      A.resize(size_t(T) * hid);
      linear(pool_, H.data(), T, w.fc1.w, w.fc1.b, d, 2 * hid, G.data());
      pool_.parallelFor(T, 4, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          for (int j = 0; j < hid; ++j) A[t * hid + j] = G[t * 2 * hid + j] * silu(G[t * 2 * hid + hid + j]);
      });
      linear(pool_, A.data(), T, w.fc2.w, w.fc2.b, hid, d, M.data());
      for (size_t i = 0; i < X.size(); ++i) X[i] += M[i];
    }
    for (auto& r : batch) r.state->pos += r.n;
    // final norm and tied head, only on the rows whose logits are wanted
    std::vector<int> rows;
    if (allLogits) for (int t = 0; t < T; ++t) rows.push_back(t);
    else for (auto& s : spans) rows.push_back(s.offset + s.n - 1);
    std::vector<float> R(rows.size() * d), Rn(rows.size() * d);
    for (size_t i = 0; i < rows.size(); ++i) std::memcpy(&R[i * d], &X[size_t(rows[i]) * d], size_t(d) * 4);
    rmsnorm(pool_, R.data(), int(rows.size()), d, m.normF, c.normEps, Rn.data());
    logits.assign(rows.size() * size_t(c.vocabPadded), 0.f);
    linear(pool_, Rn.data(), int(rows.size()), m.lmHead, nullptr, d, c.vocabPadded, logits.data());
  }

 private:
  ThreadPool pool_;

  void baseConv(const LayerConfig& L, const LayerWeights& w, int li, std::vector<SeqRequest>& batch,
                const std::vector<SeqSpan>& spans, const float* H, int T, int d, float* out) {
    const int inner = L.convInner, K = L.convKernel;
    std::vector<float> U(size_t(T) * 2 * inner), V(size_t(T) * inner);
    linear(pool_, H, T, w.inProj.w, w.inProj.b, d, 2 * inner, U.data());
    // channels are independent: split them across threads, each walking every sequence in order
    pool_.parallelFor(inner, 64, [&](int64_t c0, int64_t c1) {
      std::vector<float> hist(size_t(K - 1 + 1));
      for (size_t s = 0; s < batch.size(); ++s) {
        float* tail = batch[s].state->layers[li].conv.data();  // [K-1, inner], oldest first
        const int off = spans[s].offset, n = spans[s].n;
        for (int64_t ch = c0; ch < c1; ++ch) {
          const float* wk = w.convW + ch * K;
          auto input = [&](int t) -> float {  // t relative to this call; negative reaches into the tail
            return t >= 0 ? U[size_t(off + t) * 2 * inner + ch] : tail[size_t(K - 1 + t) * inner + ch];
          };
          for (int t = 0; t < n; ++t) {
            float y = w.convB ? w.convB[ch] : 0.f;
            for (int j = 0; j < K; ++j) y += wk[j] * input(t - (K - 1) + j);
            V[size_t(off + t) * inner + ch] = silu(y) * U[size_t(off + t) * 2 * inner + inner + ch];
          }
          for (int j = 0; j < K - 1; ++j) hist[j] = input(n - (K - 1) + j);
          for (int j = 0; j < K - 1; ++j) tail[size_t(j) * inner + ch] = hist[j];
        }
      }
    });
    linear(pool_, V.data(), T, w.outProj.w, w.outProj.b, inner, d, out);
  }

  void linearAttention(const LayerConfig& L, const LayerWeights& w, int li, std::vector<SeqRequest>& batch,
                       const std::vector<SeqSpan>& spans, const float* H, int T, int d, float* out) {
    const int h = L.laHeads, f = L.laFeatureDim, dh = L.laHeadDim, F = taylorDim(f);
    const float rd = std::sqrt(float(L.laScaleDim)), rrd = std::sqrt(rd);
    std::vector<float> Q(size_t(T) * h * f), Kp(size_t(T) * h * f), V(size_t(T) * h * dh), Y(size_t(T) * h * dh);
    linear(pool_, H, T, w.projQ.w, w.projQ.b, d, h * f, Q.data());
    linear(pool_, H, T, w.projK.w, w.projK.b, d, h * f, Kp.data());
    linear(pool_, H, T, w.projV.w, w.projV.b, d, h * dh, V.data());
    const bool jrt = L.kind == MixerKind::PrefixLinearAttention;
    // JRT-RNN: on a fresh state the prefix is also read through separate encoder projections, non-causally;
    // its sum enters every position's numerator and normalizer, which equals starting the state from it.
    std::vector<int> encLen(batch.size(), 0);
    std::vector<std::vector<float>> kEnc(batch.size()), vEnc(batch.size());
    if (jrt)
      for (size_t s = 0; s < batch.size(); ++s) {
        if (batch[s].state->pos != 0) continue;
        int e = batch[s].prefixLen >= 0 ? batch[s].prefixLen : L.encLength;
        e = std::min(e, spans[s].n);
        encLen[s] = e;
        if (e <= 0) continue;
        kEnc[s].resize(size_t(e) * h * f);
        vEnc[s].resize(size_t(e) * h * dh);
        const float* hs = H + size_t(spans[s].offset) * d;
        linear(pool_, hs, e, w.projKEnc.w, w.projKEnc.b, d, h * f, kEnc[s].data());
        linear(pool_, hs, e, w.projVEnc.w, w.projVEnc.b, d, h * dh, vEnc[s].data());
      }
    const int64_t jobs = int64_t(batch.size()) * h;
    pool_.parallelFor(jobs, 1, [&](int64_t j0, int64_t j1) {
      std::vector<float> pq(size_t(kChunk) * F), pk(size_t(kChunk) * F), num(size_t(kChunk) * dh), den(kChunk), a(kChunk);
      for (int64_t job = j0; job < j1; ++job) {
        const int s = int(job / h), hd = int(job % h);
        LayerState& st = batch[s].state->layers[li];
        float* S = st.kv.data() + size_t(hd) * F * dh;  // [F, dh]
        float* z = st.ksum.data() + size_t(hd) * F;
        const int off = spans[s].offset, n = spans[s].n;
        for (int e = 0; e < encLen[s]; ++e) {
          float phi[1024];
          taylor(&kEnc[s][(size_t(e) * h + hd) * f], f, rrd, rd, phi);
          const float* v = &vEnc[s][(size_t(e) * h + hd) * dh];
          for (int i = 0; i < F; ++i) {
            z[i] += phi[i];
            float* Si = S + size_t(i) * dh;
            for (int j = 0; j < dh; ++j) Si[j] += phi[i] * v[j];
          }
        }
        for (int c0 = 0; c0 < n; c0 += kChunk) {
          const int cn = std::min(kChunk, n - c0);
          for (int t = 0; t < cn; ++t) {
            const size_t row = size_t(off + c0 + t) * h + hd;
            taylor(&Q[row * f], f, rrd, rd, &pq[size_t(t) * F]);
            taylor(&Kp[row * f], f, rrd, rd, &pk[size_t(t) * F]);
          }
          // contribution of everything before the chunk, through the carried state
          for (int t = 0; t < cn; ++t) {
            const float* q = &pq[size_t(t) * F];
            float* nu = &num[size_t(t) * dh];
            std::fill(nu, nu + dh, 0.f);
            float dz = 0;
            for (int i = 0; i < F; ++i) {
              const float qi = q[i];
              const float* Si = S + size_t(i) * dh;
              for (int j = 0; j < dh; ++j) nu[j] += qi * Si[j];
              dz += qi * z[i];
            }
            den[t] = dz;
          }
          // causal part inside the chunk (diagonal included)
          for (int t = 0; t < cn; ++t) {
            const float* q = &pq[size_t(t) * F];
            float* nu = &num[size_t(t) * dh];
            for (int u = 0; u <= t; ++u) {
              const float* k = &pk[size_t(u) * F];
              float dot = 0;
              for (int i = 0; i < F; ++i) dot += q[i] * k[i];
              a[u] = dot;
              den[t] += dot;
            }
            for (int u = 0; u <= t; ++u) {
              const float* v = &V[(size_t(off + c0 + u) * h + hd) * dh];
              const float au = a[u];
              for (int j = 0; j < dh; ++j) nu[j] += au * v[j];
            }
            float* y = &Y[(size_t(off + c0 + t) * h + hd) * dh];
            const float inv = 1.f / (den[t] + L.laEps);
            for (int j = 0; j < dh; ++j) y[j] = nu[j] * inv;
          }
          // fold the chunk into the state
          for (int u = 0; u < cn; ++u) {
            const float* k = &pk[size_t(u) * F];
            const float* v = &V[(size_t(off + c0 + u) * h + hd) * dh];
            for (int i = 0; i < F; ++i) {
              const float ki = k[i];
              z[i] += ki;
              float* Si = S + size_t(i) * dh;
              for (int j = 0; j < dh; ++j) Si[j] += ki * v[j];
            }
          }
        }
      }
    });
    linear(pool_, Y.data(), T, w.outProj.w, w.outProj.b, h * dh, d, out);
  }

  void slidingWindow(const LayerConfig& L, const LayerWeights& w, int li, std::vector<SeqRequest>& batch,
                     const std::vector<SeqSpan>& spans, const float* H, int T, int d, float* out) {
    const int h = L.swHeads, dh = L.swHeadDim, W = L.windowLeft, ring = W + 1, rd = L.rotaryDim;
    std::vector<float> QKV(size_t(T) * 3 * d), Y(size_t(T) * d);
    linear(pool_, H, T, w.wqkv.w, w.wqkv.b, d, 3 * d, QKV.data());
    // rotary (non-interleaved halves) on q and k at absolute positions
    if (rd > 0) {
      std::vector<double> invFreq(rd / 2);
      for (int i = 0; i < rd / 2; ++i) invFreq[i] = 1.0 / std::pow(double(L.rotaryBase), double(2 * i) / double(rd));
      for (size_t s = 0; s < batch.size(); ++s) {
        const int64_t p0 = batch[s].state->pos;
        pool_.parallelFor(spans[s].n, 8, [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            float* row = &QKV[size_t(spans[s].offset + t) * 3 * d];
            const double pos = double(p0 + t);
            for (int i = 0; i < rd / 2; ++i) {
              // angles in double: at long positions an fp32 product drifts by more than the parity tolerance
              const double ang = pos * invFreq[i];
              const float cs = float(std::cos(ang)), sn = float(std::sin(ang));
              for (int part = 0; part < 2; ++part)
                for (int hd = 0; hd < h; ++hd) {
                  float* x = row + part * d + hd * dh;
                  const float x1 = x[i], x2 = x[i + rd / 2];
                  x[i] = x1 * cs - x2 * sn;
                  x[i + rd / 2] = x1 * sn + x2 * cs;
                }
            }
          }
        });
      }
    }
    const int64_t jobs = int64_t(batch.size()) * h;
    pool_.parallelFor(jobs, 1, [&](int64_t j0, int64_t j1) {
      std::vector<float> sc(ring);
      for (int64_t job = j0; job < j1; ++job) {
        const int s = int(job / h), hd = int(job % h);
        const LayerState& st = batch[s].state->layers[li];
        const int64_t p0 = batch[s].state->pos;
        const int off = spans[s].offset, n = spans[s].n;
        auto key = [&](int64_t p) -> const float* {  // absolute position p, in this call or in the ring
          return p >= p0 ? &QKV[size_t(off + (p - p0)) * 3 * d + d + hd * dh] : &st.keys[(size_t(p % ring) * h + hd) * dh];
        };
        auto value = [&](int64_t p) -> const float* {
          return p >= p0 ? &QKV[size_t(off + (p - p0)) * 3 * d + 2 * d + hd * dh] : &st.values[(size_t(p % ring) * h + hd) * dh];
        };
        for (int t = 0; t < n; ++t) {
          const int64_t p = p0 + t, lo = std::max<int64_t>(0, p - W);
          const float* q = &QKV[size_t(off + t) * 3 * d + hd * dh];
          float mx = -INFINITY;
          for (int64_t j = lo; j <= p; ++j) {
            const float* k = key(j);
            float dot = 0;
            for (int e = 0; e < dh; ++e) dot += q[e] * k[e];
            sc[j - lo] = dot * L.softmaxScale;
            mx = std::max(mx, sc[j - lo]);
          }
          float sum = 0;
          for (int64_t j = lo; j <= p; ++j) sum += (sc[j - lo] = std::exp(sc[j - lo] - mx));
          float* y = &Y[size_t(off + t) * d + hd * dh];
          std::fill(y, y + dh, 0.f);
          for (int64_t j = lo; j <= p; ++j) {
            const float* v = value(j);
            const float pj = sc[j - lo] / sum;
            for (int e = 0; e < dh; ++e) y[e] += pj * v[e];
          }
        }
      }
    });
    // keep the last W+1 keys and values (slot = position mod W+1) for the next call
    for (size_t s = 0; s < batch.size(); ++s) {
      LayerState& st = batch[s].state->layers[li];
      const int64_t p0 = batch[s].state->pos;
      const int n = spans[s].n;
      for (int t = std::max(0, n - ring); t < n; ++t) {
        const size_t slot = size_t((p0 + t) % ring);
        const float* row = &QKV[size_t(spans[s].offset + t) * 3 * d];
        std::memcpy(&st.keys[slot * d], row + d, size_t(d) * 4);
        std::memcpy(&st.values[slot * d], row + 2 * d, size_t(d) * 4);
      }
    }
    linear(pool_, Y.data(), T, w.outProj.w, w.outProj.b, d, d, out);
  }
};

}  // namespace

std::unique_ptr<Backend> makeCpuBackend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace based

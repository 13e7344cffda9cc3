// N-API surface: Engine (load / random), State handles, async forward, state save / restore.
#include <napi.h>

#include <memory>
#include <vector>

#include "engine.h"
#include "errors.h"

namespace {

using namespace based;

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

class StateWrap : public Napi::ObjectWrap<StateWrap> {
 public:
  static Napi::FunctionReference ctor;
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "State", {InstanceAccessor<&StateWrap::Position>("position")});
    ctor = Napi::Persistent(f);
    exports.Set("State", f);
  }
  explicit StateWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StateWrap>(info) {}
  ~StateWrap() override {
    if (engine && state) engine->backend->release(state.get());  // the GPU backend may hold it in a slot
  }
  Napi::Value Position(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(state ? state->pos : 0)); }
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Engine> owner, std::unique_ptr<SequenceState> s) {
    Napi::Object o = ctor.New({});
    StateWrap* w = Unwrap(o);
    w->engine = std::move(owner);
    w->state = std::move(s);
    return o;
  }
  std::shared_ptr<Engine> engine;  // a state is only meaningful for the model that made it
  std::unique_ptr<SequenceState> state;
  bool busy = false;
};
Napi::FunctionReference StateWrap::ctor;

struct Job {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<SeqRequest> reqs;
  std::vector<StateWrap*> wraps;
  bool allLogits = false;
};

class ForwardWorker : public Napi::AsyncWorker {
 public:
  ForwardWorker(Napi::Env env, std::shared_ptr<Engine> e, std::unique_ptr<Job> job, std::vector<Napi::ObjectReference> refs)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), engine_(std::move(e)), job_(std::move(job)),
        refs_(std::move(refs)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      std::lock_guard<std::mutex> l(engine_->mu);
      engine_->backend->forward(*engine_->model, job_->reqs, job_->allLogits, logits_);
    } catch (const EngineError& e) {
      code_ = e.code, msg_ = e.what();
    } catch (const std::exception& e) {
      code_ = "engine_failed", msg_ = e.what();
    }
  }
  void OnOK() override {
    for (auto* w : job_->wraps) w->busy = false;
    Napi::Env env = Env();
    if (!code_.empty()) {
      deferred_.Reject(makeError(env, code_, msg_).Value());
      return;
    }
    Napi::Float32Array out = Napi::Float32Array::New(env, logits_.size());
    std::copy(logits_.begin(), logits_.end(), out.Data());
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override {
    for (auto* w : job_->wraps) w->busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Engine> engine_;
  std::unique_ptr<Job> job_;
  std::vector<Napi::ObjectReference> refs_;  // keeps the State objects alive while the worker runs
  std::vector<float> logits_;
  std::string code_, msg_;
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "Engine",
                                   {InstanceMethod<&EngineWrap::Info>("info"), InstanceMethod<&EngineWrap::NewState>("newState"),
                                    InstanceMethod<&EngineWrap::Forward>("forward"),
                                    InstanceMethod<&EngineWrap::SaveState>("saveState"),
                                    InstanceMethod<&EngineWrap::LoadState>("loadState"),
                                    InstanceMethod<&EngineWrap::CloneState>("cloneState")});
    exports.Set("Engine", f);
  }

  // new Engine({ dir } | { randomConfig, seed }, threads)
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      makeError(env, "bad_argument", "Engine needs an options object").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    int threads = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
    try {
      if (o.Has("dir")) engine_ = openEngine(o.Get("dir").As<Napi::String>().Utf8Value(), threads);
      else if (o.Has("randomConfig"))
        engine_ = randomEngine(o.Get("randomConfig").As<Napi::String>().Utf8Value(),
                               o.Has("seed") ? uint64_t(o.Get("seed").As<Napi::Number>().Int64Value()) : 1, threads);
      else makeError(env, "bad_argument", "Engine options need dir or randomConfig").ThrowAsJavaScriptException();
    } catch (const EngineError& e) {
      makeError(env, e.code, e.what()).ThrowAsJavaScriptException();
    } catch (const std::exception& e) {
      makeError(env, "engine_failed", e.what()).ThrowAsJavaScriptException();
    }
  }

 private:
  std::shared_ptr<Engine> engine_;

  StateWrap* stateArg(Napi::Env env, Napi::Value v) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(StateWrap::ctor.Value())) {
      makeError(env, "bad_argument", "expected a State made by this engine").ThrowAsJavaScriptException();
      return nullptr;
    }
    StateWrap* w = StateWrap::Unwrap(v.As<Napi::Object>());
    if (w->engine != engine_) {
      makeError(env, "state_mismatch", "the state belongs to another engine").ThrowAsJavaScriptException();
      return nullptr;
    }
    return w;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const ModelConfig& c = engine_->model->cfg;
    Napi::Object o = Napi::Object::New(env);
    o.Set("dModel", c.dModel);
    o.Set("nLayer", c.nLayer);
    o.Set("vocab", c.vocab);
    o.Set("vocabPadded", c.vocabPadded);
    o.Set("mlpHidden", c.mlpHidden);
    o.Set("weightBytes", double(engine_->model->weightBytes));
    o.Set("stateBytes", double(stateBytes(c)));
    o.Set("backend", engine_->backend->name());
    Napi::Array kinds = Napi::Array::New(env, c.layers.size());
    for (size_t i = 0; i < c.layers.size(); ++i) {
      const char* k = "";
      switch (c.layers[i].kind) {
        case MixerKind::BaseConv: k = "conv"; break;
        case MixerKind::LinearAttention: k = "linear"; break;
        case MixerKind::PrefixLinearAttention: k = "prefix-linear"; break;
        case MixerKind::SlidingWindow: k = "window"; break;
      }
      kinds.Set(uint32_t(i), k);
    }
    o.Set("layers", kinds);
    return o;
  }

  Napi::Value NewState(const Napi::CallbackInfo& info) {
    return StateWrap::Wrap(info.Env(), engine_, newState(engine_->model->cfg));
  }

  // The host copy of a state, current (a GPU backend refreshes it from the device), or null with a JS error set.
  SequenceState* hostState(Napi::Env env, Napi::Value v) {
    StateWrap* w = stateArg(env, v);
    if (!w) return nullptr;
    try {
      engine_->backend->syncToHost(*w->state);
    } catch (const EngineError& e) {
      makeError(env, e.code, e.what()).ThrowAsJavaScriptException();
      return nullptr;
    } catch (const std::exception& e) {
      makeError(env, "engine_failed", e.what()).ThrowAsJavaScriptException();
      return nullptr;
    }
    return w->state.get();
  }

  Napi::Value CloneState(const Napi::CallbackInfo& info) {
    SequenceState* s = hostState(info.Env(), info[0]);
    if (!s) return info.Env().Undefined();
    return StateWrap::Wrap(info.Env(), engine_, std::make_unique<SequenceState>(*s));
  }

  Napi::Value SaveState(const Napi::CallbackInfo& info) {
    SequenceState* s = hostState(info.Env(), info[0]);
    if (!s) return info.Env().Undefined();
    std::vector<uint8_t> b = serializeState(engine_->model->cfg, *s);
    return Napi::Buffer<uint8_t>::Copy(info.Env(), b.data(), b.size());
  }

  Napi::Value LoadState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      makeError(env, "bad_argument", "loadState needs a Buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
    try {
      return StateWrap::Wrap(env, engine_, deserializeState(engine_->model->cfg, a.Data(), a.ByteLength()));
    } catch (const EngineError& e) {
      makeError(env, e.code, e.what()).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }

  // forward([{ state, tokens: Int32Array, prefixLen? }], allLogits) -> Promise<Float32Array>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) {
      makeError(env, "bad_argument", "forward needs an array of sequences").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Array items = info[0].As<Napi::Array>();
    auto job = std::make_unique<Job>();
    job->allLogits = info.Length() > 1 && info[1].ToBoolean().Value();
    std::vector<Napi::ObjectReference> refs;
    job->tokens.resize(items.Length());
    for (uint32_t i = 0; i < items.Length(); ++i) {
      Napi::Value it = items.Get(i);
      if (!it.IsObject()) {
        makeError(env, "bad_argument", "each sequence is an object").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      Napi::Object o = it.As<Napi::Object>();
      StateWrap* w = stateArg(env, o.Get("state"));
      if (!w) return env.Undefined();
      for (auto* other : job->wraps)
        if (other == w) {
          makeError(env, "bad_argument", "a state appears twice in one batch").ThrowAsJavaScriptException();
          return env.Undefined();
        }
      if (w->busy) {
        makeError(env, "state_busy", "the state is already being advanced by another call").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      Napi::Value tv = o.Get("tokens");
      if (!tv.IsTypedArray() || tv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        makeError(env, "bad_argument", "tokens must be an Int32Array").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      Napi::Int32Array ta = tv.As<Napi::Int32Array>();
      job->tokens[i].assign(ta.Data(), ta.Data() + ta.ElementLength());
      if (job->tokens[i].empty()) {
        makeError(env, "empty_input", "each sequence needs at least one token").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      SeqRequest r;
      r.state = w->state.get();
      r.tokens = job->tokens[i].data();
      r.n = int(job->tokens[i].size());
      Napi::Value pl = o.Get("prefixLen");
      r.prefixLen = pl.IsNumber() ? pl.As<Napi::Number>().Int32Value() : -1;
      job->reqs.push_back(r);
      job->wraps.push_back(w);
      refs.push_back(Napi::Persistent(o.Get("state").As<Napi::Object>()));
    }
    for (auto* w : job->wraps) w->busy = true;
    auto* worker = new ForwardWorker(env, engine_, std::move(job), std::move(refs));
    Napi::Promise p = worker->Promise();
    worker->Queue();
    return p;
  }
};

Napi::Value MeasureBandwidth(const Napi::CallbackInfo& info) {
  double mb = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 256;
  int threads = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  int reps = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 5;
  return Napi::Number::New(info.Env(), measureCopyBandwidth(size_t(mb * 1024 * 1024), threads, reps));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  StateWrap::Init(env, exports);
  EngineWrap::Init(env, exports);
  exports.Set("measureBandwidth", Napi::Function::New(env, MeasureBandwidth));
  exports.Set("defaultThreads", Napi::Number::New(env, defaultThreads()));
  return exports;
}

}  // namespace

NODE_API_MODULE(based_engine, Init)

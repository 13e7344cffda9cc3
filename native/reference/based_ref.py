"""PyTorch reference of BASED / JRT-RNN, written from the formulas (parallel / quadratic form only).

Tensor names follow the released HazyResearch checkpoints (transformer.layers.{i}.mixer.*), so the same
safetensors file feeds this reference and the C++ engine. It is deliberately naive: every mixer is computed
as an explicit L x L (or L x E) matrix, the opposite of the engine's chunked / recurrent forms, so
agreement between the two is evidence that both are right.
"""
import math

import torch
import torch.nn.functional as F


def layer_kind(cfg, i):
    if i in cfg.get("alt_mixer_2_layers", []):
        mix = cfg["alt_mixer_2"]
    elif i in cfg.get("alt_mixer_layers", []):
        mix = cfg["alt_mixer"]
    else:
        mix = cfg["mixer"]
    t = mix["_target_"]
    if "PrefixLinearAttention" in t:
        return "jrt", mix
    if "LinearAttention" in t:
        return "linear", mix
    if "Slid" in t:
        return "window", mix
    if "BaseConv" in t:
        return "conv", mix
    raise ValueError(t)


def padded_vocab(cfg):
    m = cfg.get("pad_vocab_size_multiple", 1)
    return (cfg.get("vocab_size", 50257) + m - 1) // m * m


def mlp_hidden(cfg):
    h = cfg.get("n_inner") or int(8 * cfg["n_embd"] / 3)
    return (h + 127) // 128 * 128


def kernel_size(mix):
    k = mix.get("kernel_size", mix.get("kernel_sizes", 3))
    return k[0] if isinstance(k, list) else k


def random_state_dict(cfg, seed, std=0.02, dtype=torch.float32):
    """Random weights with every tensor the engine reads; norms near 1 and non-zero biases so that each is exercised."""
    g = torch.Generator().manual_seed(seed)
    d = cfg["n_embd"]
    hid = mlp_hidden(cfg)
    sd = {}

    def randn(*shape, s=std):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * s).to(dtype)

    def norm():
        return (1 + 0.1 * torch.randn(d, generator=g)).to(dtype)

    sd["transformer.embeddings.word_embeddings.weight"] = randn(padded_vocab(cfg), d, s=0.5)
    for i in range(cfg["n_layer"]):
        p = f"transformer.layers.{i}."
        sd[p + "norm1.weight"] = norm()
        sd[p + "norm2.weight"] = norm()
        sd[p + "mlp.fc1.weight"] = randn(2 * hid, d)
        sd[p + "mlp.fc2.weight"] = randn(d, hid)
        kind, mix = layer_kind(cfg, i)
        m = p + "mixer."
        if kind == "conv":
            inner = mix.get("expand_proj", 2) * d // 2
            sd[m + "in_proj.weight"] = randn(2 * inner, d)
            sd[m + "in_proj.bias"] = randn(2 * inner)
            sd[m + "out_proj.weight"] = randn(d, inner)
            sd[m + "out_proj.bias"] = randn(d)
            sd[m + "conv.conv.weight"] = randn(inner, 1, kernel_size(mix), s=0.5)
        elif kind in ("linear", "jrt"):
            h, f = mix.get("num_heads", 16), mix.get("feature_dim", 16)
            dh = mix.get("head_dim", d // h)
            # larger q/k projections so the quadratic Taylor term matters
            sd[m + "proj_q.weight"] = randn(h * f, d, s=0.1)
            sd[m + "proj_k.weight"] = randn(h * f, d, s=0.1)
            sd[m + "proj_v.weight"] = randn(h * dh, d)
            sd[m + "out_proj.weight"] = randn(d, h * dh)
            if kind == "jrt":
                sd[m + "proj_k_enc.weight"] = randn(h * f, d, s=0.1)
                sd[m + "proj_v_enc.weight"] = randn(h * dh, d)
        else:
            sd[m + "Wqkv.weight"] = randn(3 * d, d, s=0.1)
            sd[m + "out_proj.weight"] = randn(d, d)
    sd["transformer.ln_f.weight"] = norm()
    return sd


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def taylor_full(x, scale_dim):
    """The released feature map: [1, x / d^(1/4), vec(x x^T) / (sqrt2 sqrt d)]."""
    rd = math.sqrt(scale_dim)
    x2 = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / math.sqrt(2)
    return torch.cat([torch.ones_like(x[..., :1]), x / math.sqrt(rd), x2 / rd], dim=-1)


def rotary(x, pos, dim, base):
    """Non-interleaved rotary on the first `dim` channels of each head; x: [L, h, dh]."""
    half = dim // 2
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64, device=x.device) / dim))
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype)[:, None, :], ang.sin().to(x.dtype)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:dim]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, x[..., dim:]], dim=-1)


@torch.no_grad()
def forward(cfg, sd, tokens, prefix_len=None, dtype=torch.float64, device="cpu"):
    """Logits for every position of one sequence (a fresh state). prefix_len: JRT prefix (default min(enc_length, L))."""
    W = {k: v.to(device=device, dtype=dtype) for k, v in sd.items()}
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    d = cfg["n_embd"]
    toks = torch.as_tensor(tokens, device=device, dtype=torch.long)
    L = toks.shape[0]
    x = W["transformer.embeddings.word_embeddings.weight"][toks]
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool, device=device))
    for i in range(cfg["n_layer"]):
        p = f"transformer.layers.{i}."
        m = p + "mixer."
        h = rms(x, W[p + "norm1.weight"], eps)
        kind, mix = layer_kind(cfg, i)
        if kind == "conv":
            inner = mix.get("expand_proj", 2) * d // 2
            u = h @ W[m + "in_proj.weight"].T + W[m + "in_proj.bias"]
            u1, u2 = u[:, :inner], u[:, inner:]
            k = kernel_size(mix)
            c = F.conv1d(u1.T.unsqueeze(0), W[m + "conv.conv.weight"], W.get(m + "conv.conv.bias"), padding=k - 1, groups=inner)
            c = c[0, :, :L].T
            y = (F.silu(c) * u2) @ W[m + "out_proj.weight"].T + W[m + "out_proj.bias"]
        elif kind in ("linear", "jrt"):
            nh, f = mix.get("num_heads", 16), mix.get("feature_dim", 16)
            dh = mix.get("head_dim", d // nh)
            sdim = mix.get("scale_dim", f)
            q = taylor_full((h @ W[m + "proj_q.weight"].T).view(L, nh, f), sdim).transpose(0, 1)
            kk = taylor_full((h @ W[m + "proj_k.weight"].T).view(L, nh, f), sdim).transpose(0, 1)
            v = (h @ W[m + "proj_v.weight"].T).view(L, nh, dh).transpose(0, 1)
            A = (q @ kk.transpose(1, 2)) * causal  # [nh, L, L]
            num = A @ v
            den = A.sum(-1)
            if kind == "jrt":
                enc = cfg.get("enc_length", mix.get("enc_length"))
                E = min(enc if prefix_len is None else prefix_len, L)
                if E > 0:
                    he = h[:E]
                    ke = taylor_full((he @ W[m + "proj_k_enc.weight"].T).view(E, nh, f), sdim).transpose(0, 1)
                    ve = (he @ W[m + "proj_v_enc.weight"].T).view(E, nh, dh).transpose(0, 1)
                    B = q @ ke.transpose(1, 2)  # [nh, L, E]: every position sees the whole prefix
                    num = num + B @ ve
                    den = den + B.sum(-1)
            yh = num / (den[..., None] + mix.get("eps", 1e-12))
            y = yh.transpose(0, 1).reshape(L, nh * dh) @ W[m + "out_proj.weight"].T
        else:
            nh = mix.get("num_heads", cfg.get("n_head", 16))
            dh = d // nh
            left = mix.get("window_size", 128) // 2
            qkv = h @ W[m + "Wqkv.weight"].T
            if m + "Wqkv.bias" in W:
                qkv = qkv + W[m + "Wqkv.bias"]
            q, k, v = (t.view(L, nh, dh) for t in qkv.split(d, dim=-1))
            rdim = int(cfg.get("rotary_emb_fraction", 0.0) * dh)
            if rdim > 0:
                pos = torch.arange(L, device=device)
                q = rotary(q, pos, rdim, cfg.get("rotary_emb_base", 10000.0))
                k = rotary(k, pos, rdim, cfg.get("rotary_emb_base", 10000.0))
            scale = dh ** -0.5 if cfg.get("scale_attn_weights", True) else 1.0
            s = torch.einsum("ihd,jhd->hij", q, k) * scale
            idx = torch.arange(L, device=device)
            allowed = (idx[None, :] <= idx[:, None]) & (idx[None, :] >= idx[:, None] - left)
            s = s.masked_fill(~allowed, float("-inf"))
            y = torch.einsum("hij,jhd->ihd", s.softmax(-1), v).reshape(L, d) @ W[m + "out_proj.weight"].T
        x = x + y
        h = rms(x, W[p + "norm2.weight"], eps)
        g = h @ W[p + "mlp.fc1.weight"].T
        hid = g.shape[-1] // 2
        x = x + (g[:, :hid] * F.silu(g[:, hid:])) @ W[p + "mlp.fc2.weight"].T
    x = rms(x, W["transformer.ln_f.weight"], eps)
    head = W.get("lm_head.weight", W["transformer.embeddings.word_embeddings.weight"])
    return x @ head.T

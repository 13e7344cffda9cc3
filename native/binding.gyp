{
  "targets": [
    {
      "target_name": "based_engine",
      "sources": [
        "src/addon.cpp", "src/engine.cpp", "src/cpu_backend.cpp", "src/cpu_kernels.cpp",
        "src/model.cpp", "src/safetensors.cpp", "src/json.cpp", "src/threadpool.cpp", "src/backend_select.cpp"
      ],
      "libraries": ["-ldl"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
      "conditions": [["target_arch=='x64'", { "cflags_cc": ["-march=x86-64-v2"] }]],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"] }
    }
  ]
}
